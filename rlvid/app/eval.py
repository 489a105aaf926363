"""`rlvid eval RECIPE`: greedy predictions on a split and the task metrics, written to a folder.

`--checkpoint` (repeatable) or `--run RUN` (its checkpoints/step-N and final/) evaluates several models
in one call; each one's metrics.json and predictions.jsonl go NEXT TO that model, in
`<model>/eval_<split>/`, so evaluating another run's checkpoint never writes into the recipe's run
folder. Without a checkpoint the recipe's own model is evaluated into output_dir/eval_<split>/.
A checkpoint that `from_pretrained` cannot load as it is (LoRA) is exported to a temporary folder first
(`rlvid.app.export`).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from rlvid.app.export import export_checkpoint
from rlvid.config import load_recipe
from rlvid.config.recipe_paths import check_model_path, find_recipe
from rlvid.data.recipe_data import load_split, make_input_builder
from rlvid.eval.metrics import evaluate_completions
from rlvid.eval.per_sample import prediction_rows
from rlvid.eval.predict import predict
from rlvid.eval.table import format_eval_table
from rlvid.models.loading import load_policy, load_processor
from rlvid.policy import Policy
from rlvid.redact import scrub
from rlvid.safe_paths import safe_component
from rlvid.trainers import console
from rlvid.trainers.checkpoint import COMPLETE, MODEL_WEIGHTS, complete_checkpoints, is_model_folder
from rlvid.trainers.summary import headline_rank


def run_eval(recipe_path: str, checkpoint: str | Sequence[str] | None = None, overrides: list[str] | None = None,
             split: str = "val", out: str | None = None, batch_size: int = 8, run: str | None = None) -> int:
    """Evaluate each checkpoint (default: the recipe's model) and write metrics.json + predictions.jsonl."""
    recipe = load_recipe(recipe_path, overrides or [])
    if recipe.streaming.enabled:  # greedy streaming rollouts of the tiny streaming LM (docs/streaming.md)
        from rlvid.app.streaming import run_stream_eval

        found = run_stream_eval(recipe, eval_targets(checkpoint, run), split, out)
        if len(found) > 1:
            print(compare_table(found))
        return 0
    recipe_dir = find_recipe(recipe_path).resolve().parent  # a template file named in the recipe is looked up there
    console.configure_console(recipe.trainer.log_level)  # no weight-loading bars between the tables
    targets = eval_targets(checkpoint, run)
    for target in targets or [recipe.model.path]:
        check_model_path(str(target))  # a wrong model folder is named before any data or model is loaded
    samples = load_split(recipe, split)
    convention, dense = recipe.trainer.eval_convention, recipe.trainer.eval_dense
    results: dict[str, dict[str, float]] = {}
    for target in targets or [None]:
        model_path = target or recipe.model.path
        out_dir = eval_folder(target, recipe, split, out, several=len(targets) > 1)
        with loadable(model_path) as folder:
            model = load_policy(recipe.model, folder)
            processor = load_processor(folder, recipe.model.trust_remote_code)
            builder = make_input_builder(recipe, processor, base_dir=recipe_dir)
            start = time.perf_counter()
            completions = predict(Policy(model, builder), samples, batch_size=batch_size,
                                  max_new_tokens=recipe.rollout.max_new_tokens)
            del model
        metrics = evaluate_completions(completions, samples, convention=convention, dense=dense)
        metrics["eval/seconds"] = time.perf_counter() - start
        write_eval(out_dir, metrics, samples, completions, convention, dense)
        results[str(model_path)] = metrics
        print(format_eval_table(metrics, title=f"{model_path} on {split} ({len(samples)} samples)"))
        print(f"wrote {out_dir / 'metrics.json'} and {out_dir / 'predictions.jsonl'}")
    print(f"conventions: grounding {convention}, dense captioning {dense} (docs/fidelity.md)")
    if len(results) > 1:
        print(compare_table(results))
    return 0


def eval_targets(checkpoints: str | Sequence[str] | None, run: str | None) -> list[str]:
    """The models to evaluate: the named checkpoints, then a run folder's complete checkpoints and final/."""
    targets = [checkpoints] if isinstance(checkpoints, str) else list(checkpoints or [])
    if run is not None:
        run_dir = Path(run)
        found = [str(p) for p in complete_checkpoints(run_dir)]
        if (run_dir / "final" / COMPLETE).is_file():
            found.append(str(run_dir / "final"))
        if not found:
            raise FileNotFoundError(f"--run {run}: no complete checkpoints/step-N or final/ folder there")
        targets += found
    return targets


def eval_folder(target: str | None, recipe, split: str, out: str | None, several: bool) -> Path:
    """Where one model's results go: --out (a subfolder per model when there are several), else next to a local
    checkpoint, else (the recipe's model, a hub id) output_dir/eval_<split>."""
    name = safe_component(f"eval_{split}")
    if out is not None:
        return Path(out) / safe_component(_label(target)) if several else Path(out)
    if target is not None and Path(target).is_dir():
        return Path(target) / name
    base = Path(recipe.trainer.output_dir) / name
    return base / safe_component(target) if target is not None else base


def _label(target: str | None) -> str:
    if target is None:
        return "model"
    path = Path(target)
    if path.parent.name == "checkpoints":
        return f"{path.parent.parent.name}-{path.name}"
    return f"{path.parent.name}-{path.name}" if path.name == "final" else path.name


@contextmanager
def loadable(model_path: str) -> Iterator[str]:
    """`model_path` itself when `from_pretrained` can load it, else a temporary merged export of the checkpoint."""
    path = Path(model_path)
    if not path.is_dir() or is_model_folder(path) or not (path / MODEL_WEIGHTS).is_file():
        yield model_path
        return
    with tempfile.TemporaryDirectory(prefix="rlvid-eval-") as tmp:
        yield str(export_checkpoint(path, Path(tmp) / "model", merge_lora=True))


def write_eval(out_dir: Path, metrics: dict[str, float], samples, completions: list[str],
               convention: str = "standard", dense: str = "rlvid") -> None:
    """metrics.json (with `eval/convention` and `eval/dense`, the conventions used) and predictions.jsonl (one row
    per sample: its ground truth, the completion and the sample's own `score`)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    record = scrub({**metrics, "eval/convention": convention, "eval/dense": dense})
    (out_dir / "metrics.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    with open(out_dir / "predictions.jsonl", "w") as f:
        for row in prediction_rows(samples, completions, convention, dense):
            f.write(json.dumps(scrub(row), default=str) + "\n")


def compare_table(results: dict[str, dict[str, float]], columns: int = 4) -> str:
    """One line per evaluated model with its headline metrics side by side."""
    keys = sorted({k for m in results.values() for k in m if not k.endswith("/count") and not k.startswith("eval/")},
                  key=headline_rank)[:columns]
    width = max(len(_label(t)) for t in results)
    lines = [f"{'model':<{width}}  " + "  ".join(f"{k:>{max(len(k), 6)}}" for k in keys)]
    for target, metrics in results.items():
        cells = [f"{metrics[k]:>{max(len(k), 6)}.3f}" if k in metrics else f"{'-':>{max(len(k), 6)}}" for k in keys]
        lines.append(f"{_label(target):<{width}}  " + "  ".join(cells))
    return "\n".join(lines)

