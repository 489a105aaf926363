"""`rlvid eval RECIPE`: greedy predictions on a split and the task metrics, written to a folder."""

from __future__ import annotations

import json
import time
from pathlib import Path

from rlvid.config import load_recipe
from rlvid.data.recipe_data import load_split, make_input_builder
from rlvid.eval.metrics import evaluate_completions
from rlvid.eval.predict import predict
from rlvid.models.loading import load_policy, load_processor
from rlvid.policy import Policy
from rlvid.redact import scrub
from rlvid.safe_paths import safe_component


def run_eval(recipe_path: str, checkpoint: str | None = None, overrides: list[str] | None = None,
             split: str = "val", out: str | None = None, batch_size: int = 8) -> int:
    """Evaluate `checkpoint` (default: the recipe's model) and write metrics.json + predictions.jsonl."""
    recipe = load_recipe(recipe_path, overrides or [])
    model_path = checkpoint or recipe.model.path
    model = load_policy(recipe.model, model_path)
    processor = load_processor(model_path, recipe.model.trust_remote_code)
    builder = make_input_builder(recipe, processor, base_dir=Path(recipe_path).resolve().parent)
    samples = load_split(recipe, split)
    start = time.perf_counter()
    completions = predict(Policy(model, builder), samples, batch_size=batch_size,
                          max_new_tokens=recipe.rollout.max_new_tokens)
    convention, dense = recipe.trainer.eval_convention, recipe.trainer.eval_dense
    metrics = evaluate_completions(completions, samples, convention=convention, dense=dense)
    metrics["eval/seconds"] = time.perf_counter() - start
    out_dir = Path(out or Path(recipe.trainer.output_dir) / safe_component(f"eval_{split}"))
    write_eval(out_dir, metrics, samples, completions, convention, dense)
    print(format_metrics(metrics, title=f"{model_path} on {split} ({len(samples)} samples)"))
    print(f"conventions: grounding {convention}, dense captioning {dense} (docs/fidelity.md)")
    print(f"wrote {out_dir / 'metrics.json'} and {out_dir / 'predictions.jsonl'}")
    return 0


def write_eval(out_dir: Path, metrics: dict[str, float], samples, completions: list[str],
               convention: str = "standard", dense: str = "rlvid") -> None:
    """metrics.json (with `eval/convention` and `eval/dense`, the conventions used) and predictions.jsonl."""
    out_dir.mkdir(parents=True, exist_ok=True)
    record = scrub({**metrics, "eval/convention": convention, "eval/dense": dense})
    (out_dir / "metrics.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    with open(out_dir / "predictions.jsonl", "w") as f:
        for sample, completion in zip(samples, completions, strict=True):
            f.write(json.dumps(scrub({"id": sample.id, "task": sample.task, "completion": completion})) + "\n")


def format_metrics(metrics: dict[str, float], title: str = "") -> str:
    width = max(len(k) for k in metrics)
    lines = [title] if title else []
    lines += [f"  {k:<{width}}  {v:.4f}" for k, v in sorted(metrics.items())]
    return "\n".join(lines)
