"""Evidence for streaming GRPO: timing learned from the reward, with a sign-flipped control, over seeds.

For each seed:
1. the recipe's warm start (rlvid/trainers/streaming_sft.py): the answer said once at a time
   that ignores the video (`streaming.sft_times`: random or end), so the timing is not taught;
2. from that model, streaming GRPO with the recipe's rewards, and the control: the same run with
   every reward weight negated;
3. greedy streaming rollouts on the held-out streams (streaming.synthetic.seed + 1000) before and after, scored
   by rlvid/eval/streaming_metrics.py; plus the scores of two fixed policies on the same streams:
   speaking after every chunk (spam) and never speaking (silence).

    python scripts/streaming_evidence.py --recipe recipes/grpo_streaming.yaml --seeds 0 1 --out /tmp/stream.json

`--set section.key=value` overrides recipe values (e.g. --set trainer.max_steps=20 streaming.synthetic.chunks=12).
The runs here call the streaming step directly, in one process (no run folder); `rlvid train` runs the
same recipe through the shared loop (docs/streaming.md).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import time

import torch

from rewards import compose_rewards
from rlvid.app.stream_compose import grpo_config, stream_clips, stream_model
from rlvid.config import load_recipe, recipe_to_dict
from rlvid.eval.streaming_baselines import fixed_policy_metrics
from rlvid.trainers.streaming_grpo import StreamingGRPOTrainer
from rlvid.trainers.streaming_sft import streaming_warm_start


def run_seed(recipe, seed: int, verbose: bool, runs: tuple[str, ...] = ("grpo", "control"), curve: int = 0) -> dict:
    recipe = copy.deepcopy(recipe)
    recipe.trainer.seed = recipe.streaming.synthetic.seed = seed
    train, held_out = stream_clips(recipe, "train"), stream_clips(recipe, "val")
    t0 = time.time()
    sft = stream_model(recipe)
    streaming_warm_start(sft, train, steps=recipe.sft.steps, batch=recipe.sft.global_samples_per_step,
                         lr=recipe.sft.lr, chunk_seconds=recipe.data.video.stream_chunk_seconds,
                         times=recipe.streaming.sft_times, seed=seed)
    config = grpo_config(recipe)
    rewards = recipe.rewards.functions
    out = {"sft_seconds": round(time.time() - t0, 1), **fixed_policy_metrics(held_out, config.stream_chunk_seconds)}
    out["sft"] = StreamingGRPOTrainer(sft, train, compose_rewards(rewards), config).evaluate(held_out)
    for name, sign in (("grpo", 1.0), ("control", -1.0)):
        if name not in runs:
            continue
        specs = [dataclasses.replace(s, weight=sign * s.weight) for s in rewards]
        trainer = StreamingGRPOTrainer(copy.deepcopy(sft), train, compose_rewards(specs), config)
        t0 = time.time()
        history, f1_curve = [], []
        for step in range(recipe.trainer.max_steps):
            history.append(trainer.train_step(step))
            if verbose:
                print(seed, name, step, {k: round(v, 3) for k, v in history[-1].items()}, flush=True)
            if curve and (step + 1) % curve == 0:  # greedy evaluation draws no random numbers: training is unchanged
                f1_curve.append((step + 1, round(trainer.evaluate(held_out)["timing_f1"], 3)))
        out[name] = trainer.evaluate(held_out)
        if curve:
            out[name]["held_out_f1_curve"] = f1_curve
        out[name]["train_reward_first5"] = sum(h["reward"] for h in history[:5]) / 5
        out[name]["train_reward_last5"] = sum(h["reward"] for h in history[-5:]) / 5
        out[name]["seconds"] = round(time.time() - t0, 1)
    return out


def markdown_table(seeds: dict) -> str:
    """One row per seed and model: held-out greedy timing metrics (the table of docs/streaming.md, Evidence)."""
    rows = ["| seed | model | timing F1 | precision | recall | mean delay (s) | content | responses / stream |",
            "|---|---|---|---|---|---|---|---|"]
    names = {"sft": "warm start", "grpo": "GRPO", "control": "control (sign-flipped)", "spam": "spam",
             "silence": "silence"}
    for seed, out in seeds.items():
        for key, name in names.items():
            if key in out:
                m = out[key]
                rows.append(f"| {seed} | {name} | {m['timing_f1']:.2f} | {m['timing_precision']:.2f} | "
                            f"{m['timing_recall']:.2f} | {m['mean_delay']:.2f} | {m['content']:.2f} | "
                            f"{m['responses_per_stream']:.2f} |")
    return "\n".join(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipe", default="recipes/grpo_streaming.yaml")
    p.add_argument("--set", nargs="*", default=[], help="section.key=value overrides of the recipe")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", nargs="+", default=["grpo", "control"], choices=["grpo", "control"])
    p.add_argument("--curve", type=int, default=0, help="also held-out greedy F1 every N steps (0: only at the end)")
    p.add_argument("--verbose", action="store_true")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    recipe = load_recipe(args.recipe, args.set)
    seeds = {s: run_seed(recipe, s, args.verbose, tuple(args.runs), args.curve) for s in args.seeds}
    result = {"recipe": recipe_to_dict(recipe), "seeds": seeds}
    text = json.dumps(result, indent=1)
    print(text)
    print(markdown_table(seeds))
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
