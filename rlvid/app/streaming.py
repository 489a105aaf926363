"""`rlvid train` / `rlvid eval` on a streaming recipe (`streaming.enabled`): the shared stack, streaming parts.

`rlvid train`: with `sft.steps > 0`, the warm start runs as the SFT stage in output_dir/sft (its
own checkpoints and final/, reused when finished), then `trainer.algorithm` grpo (streaming GRPO)
or mdpo (pairs from the warm-started model's trajectories, then M-DPO) in output_dir, all through
`trainers/loop.py` (run folder, checkpoints, `trainer.resume`, hooks, metrics.jsonl / wandb).
Model folders hold the tiny streaming LM (`stream_lm.pt` + `stream_lm.json`), or with `streaming.model:
qwen_vl` the Qwen-VL model as a Hugging Face folder (weights, config, processor).

`rlvid eval`: greedy streaming rollouts of each model (`--checkpoint`, `--run`, default
output_dir/final) on the split's streams, scored by `evaluate_completions` (`stream/<metric>`),
written with the shared `write_eval` (metrics.json, predictions.jsonl with the transcripts).
"""

from __future__ import annotations

import time
from pathlib import Path

from rlvid.app.stream_compose import (
    stream_clips,
    stream_model,
    stream_policy,
    streaming_grpo_trainer,
    streaming_mdpo_trainer,
    streaming_warm_start,
)
from rlvid.eval.table import format_eval_table
from rlvid.trainers import console
from rlvid.trainers.stream_eval import streaming_eval
from rlvid.trainers.summary import format_summary


def run_stream_train(recipe, recipe_dir: Path):
    """The warm start (when `sft.steps > 0`), then the streaming trainer; returns it after `fit` (its
    `final_dir` is the final model folder)."""
    model_path = None
    if recipe.sft.steps > 0:
        started = time.perf_counter()
        model_path = streaming_warm_start(recipe, recipe_dir)
        console.write(format_summary(model_path.parent, "sft", recipe.sft.steps, time.perf_counter() - started,
                                     model_path))
    build = streaming_mdpo_trainer if recipe.trainer.algorithm == "mdpo" else streaming_grpo_trainer
    trainer = build(recipe, recipe_dir, model_path=model_path)
    trainer.final_dir = trainer.fit()
    return trainer


def run_stream_eval(recipe, targets: list[str], split: str, out: str | None) -> dict[str, dict[str, float]]:
    """Streaming metrics of each target (default output_dir/final) on `split`; returns {model: metrics}."""
    from rlvid.app.eval import eval_folder, write_eval

    clips = stream_clips(recipe, split)
    samples = [c.sample for c in clips]
    results = {}
    for target in targets or [str(Path(recipe.trainer.output_dir) / "final")]:
        out_dir = eval_folder(target, recipe, split, out, several=len(targets) > 1)
        start = time.perf_counter()
        metrics, transcripts = streaming_eval(stream_policy(recipe, stream_model(recipe, target)), clips, recipe)
        metrics["eval/seconds"] = time.perf_counter() - start
        write_eval(out_dir, metrics, samples, transcripts)
        results[target] = metrics
        print(format_eval_table(metrics, title=f"{target} on {split} ({len(samples)} streams)"))
        print(f"wrote {out_dir / 'metrics.json'} and {out_dir / 'predictions.jsonl'}")
    return results
