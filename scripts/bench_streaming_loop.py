#!/usr/bin/env python
"""What the shared loop costs a streaming GRPO step: the same steps called directly vs run by `Trainer.fit`.

Both arms start from the same fresh tiny streaming LM, draw the same streams and use the recipe's
step (`StreamingGRPOTrainer.train_step`). The loop arm is `StreamingGRPOLoopTrainer.fit()` with no
hooks and no mid-run checkpoints (its last-step checkpoint and final/ are written, and counted);
the direct arm calls `train_step` in a Python loop. Arms alternate `--repeats` times; the ratio
of their medians is the figure (a shared machine's load changes between repeats, less within one).

    OMP_NUM_THREADS=1 python scripts/bench_streaming_loop.py --steps 10 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from rlvid.app.stream_compose import grpo_config, stream_clips, stream_model, streaming_grpo_trainer
from rlvid.config import load_recipe
from rlvid.trainers.streaming_grpo import StreamingGRPOTrainer
from rlvid.trainers.streaming_loop import step_seed

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "grpo_streaming.yaml"


def direct(recipe, steps: int) -> float:
    from rewards import compose_rewards

    model, clips = stream_model(recipe), stream_clips(recipe, "train")
    trainer = StreamingGRPOTrainer(model, clips, compose_rewards(recipe.rewards.functions), grpo_config(recipe))
    start = time.perf_counter()
    for step in range(steps):
        trainer.generator.manual_seed(step_seed(recipe.trainer.seed, step))
        trainer.train_step(step)
    return time.perf_counter() - start


def through_loop(recipe, steps: int, out: Path) -> float:
    trainer = streaming_grpo_trainer(recipe, output_dir=out)
    start = time.perf_counter()
    trainer.fit()
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--set", nargs="*", default=["rollout.num_generations=4", "trainer.global_prompts_per_step=4"])
    args = p.parse_args()
    torch.set_num_threads(1)
    recipe = load_recipe(RECIPE, [*args.set, f"trainer.max_steps={args.steps}", "sft.steps=0", "hooks=[]",
                                  "trainer.save_steps=0", "trainer.progress_bar=false", "logging.wandb=disabled"])
    times: dict[str, list[float]] = {"direct": [], "loop": []}
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.repeats):
            times["direct"].append(direct(recipe, args.steps))
            times["loop"].append(through_loop(recipe, args.steps, Path(tmp) / f"run{k}"))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(json.dumps({"steps": args.steps, "seconds": times, "median_s_per_step": {k: v / args.steps for k, v in
                                                                                  med.items()},
                      "loop_over_direct": med["loop"] / med["direct"]}, indent=1))


if __name__ == "__main__":
    main()
