"""Benchmark: held-out reward with and without visual-token dropping (data.video.token_drop), same data and seeds.

Setting: the learning test's (tests/test_grpo_learning.py), with larger frames so single tokens can go: tiny
Qwen2.5-VL, synthetic temporal grounding, SFT on 4 s clips then GRPO on 12 s clips (288 train, 72 held out), 16
frames at 2 fps of `--pixels` px each. Each arm applies its drop setting everywhere (SFT, rollouts, log-prob
passes, update, evaluation): `none`, `token` (single visual tokens leave the LLM input, positions kept),
`patch` (whole frame pairs leave at decode time unless some token's region changed). Held-out reward = the
eval hook's total reward (format 0.5 + temporal IoU 0.5, greedy, 72 clips) at the end of GRPO.

Two figures per arm: (1) trained with dropping: held-out reward after SFT + GRPO, paired with the `none` run of the
same data seed and trainer seed; (2) inference only: the `none` run's final model evaluated with the arm's
dropping, paired clip by clip with its own no-drop evaluation (isolates what dropping does to a fixed model).

    OMP_NUM_THREADS=1 python scripts/bench_drop_reward.py --data-seeds 0 1 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from rewards import compose_rewards, sample_columns
from rlvid.app.train import run_train
from rlvid.config import load_recipe
from rlvid.data.loaders import load_jsonl
from rlvid.data.recipe_data import make_input_builder
from rlvid.eval.predict import predict
from rlvid.models.loading import load_policy, load_processor
from rlvid.policy import Policy

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the tiny fixtures live with the tests
from tiny_setup import make_grounding_setup, write_recipe  # noqa: E402

REWARD = "eval/rewards/total"
ARMS = {"none": "none", "token": "token", "patch": "patch"}


def video(mode: str, pixels: int, threshold: float) -> dict:
    return {"fps": 2.0, "min_frames": 4, "max_frames": 16, "total_pixels": 16 * pixels,
            "min_pixels_per_frame": pixels, "max_pixels_per_frame": pixels,
            "token_drop": {"mode": mode, "threshold": threshold, "min_kept_frames": 4}}


def last(output_dir: Path, key: str) -> dict:
    rows = [json.loads(line) for line in open(output_dir / "metrics.jsonl")]
    return [r for r in rows if key in r][-1]


def per_clip_rewards(recipe_path: Path, model_path: str, samples) -> list[float]:
    """Total reward of each greedy completion (the recipe's video settings, drop included)."""
    recipe = load_recipe(recipe_path)
    model = load_policy(recipe.model, model_path)
    builder = make_input_builder(recipe, load_processor(model_path))
    completions = predict(Policy(model, builder), samples, batch_size=8, max_new_tokens=recipe.rollout.max_new_tokens)
    reward_set = compose_rewards(recipe.rewards.functions, base_dir=recipe_path.parent)
    return list(reward_set(completions, **sample_columns(samples)).total)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=None)
    ap.add_argument("--data-seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS), help="the first is the baseline")
    ap.add_argument("--pixels", type=int, default=12544, help="pixels per frame (12544: 4x4 merged tokens a pair)")
    ap.add_argument("--threshold", type=float, default=0.02)
    ap.add_argument("--sft-steps", type=int, default=60)
    ap.add_argument("--steps", type=int, default=50)
    args = ap.parse_args()
    torch.set_num_threads(1)
    root = Path(args.root or tempfile.mkdtemp(prefix="bench_drop_reward_"))
    start = time.perf_counter()
    runs, inference = [], []
    for data_seed in args.data_seeds:
        setup = make_grounding_setup(root / f"setup{data_seed}", seed=data_seed)
        held_out = load_jsonl(setup["data"] / "val.jsonl").samples
        for seed in args.seeds:
            finals = {}
            for arm in args.arms:
                work = root / f"d{data_seed}-s{seed}-{arm}"
                work.mkdir(parents=True, exist_ok=True)
                common = {"data": {"video": video(ARMS[arm], args.pixels, args.threshold)},
                          "rollout": {"max_new_tokens": 16}, "hooks": [{"name": "eval_grounding"}]}
                sft = write_recipe(work / "sft.yaml", {"model": setup["model"], "data": setup["sft_data"]},
                                   work / "sft", {
                    **common, "trainer": {"seed": seed, "eval_steps": 1000, "algorithm": "sft",
                                          "micro_batch_size_per_device": 16},
                    "data": {**common["data"], "val": str(setup["data"] / "val.jsonl")},
                    "sft": {"steps": args.sft_steps, "lr": 3.0e-3, "global_samples_per_step": 8}})
                sft_model = run_train(str(sft))
                grpo = write_recipe(work / "grpo.yaml", {"model": sft_model, "data": setup["data"]}, work / "grpo", {
                    **common, "trainer": {"seed": seed, "eval_steps": 1000, "max_steps": args.steps, "lr": 1.0e-3,
                                          "global_prompts_per_step": 8, "micro_batch_size_per_device": 32,
                                          "loss_agg": "dapo", "save_total_limit": 1},
                    "rollout": {**common["rollout"], "num_generations": 8, "temperature": 1.0}})
                t0 = time.perf_counter()
                finals[arm] = (grpo, run_train(str(grpo)))
                step = last(work / "grpo", "tokens/visual_per_prompt")
                row = {"data_seed": data_seed, "seed": seed, "arm": arm,
                       "sft": last(work / "sft", REWARD)[REWARD], "grpo": last(work / "grpo", REWARD)[REWARD],
                       "visual_tokens_per_prompt": step["tokens/visual_per_prompt"],
                       "frames_kept": step["tokens/frames_kept_fraction"],
                       "tokens_kept": step.get("tokens/visual_kept_fraction", 1.0),
                       "grpo_step_seconds": step["time/step"], "grpo_seconds": time.perf_counter() - t0}
                runs.append(row)
                print(json.dumps(row), flush=True)
            base_recipe, base_model = finals[args.arms[0]]
            base = per_clip_rewards(base_recipe, str(base_model), held_out)
            for arm in args.arms[1:]:
                recipe = finals[arm][0]  # the arm's video settings, the baseline's model
                dropped = per_clip_rewards(recipe, str(base_model), held_out)
                row = {"data_seed": data_seed, "seed": seed, "arm": arm, "no_drop": statistics.fmean(base),
                       "with_drop": statistics.fmean(dropped),
                       "clips_changed": sum(abs(a - b) > 1e-9 for a, b in zip(base, dropped, strict=True))}
                inference.append(row)
                print(json.dumps({"inference_only": row}), flush=True)
    summary = {}
    for arm in args.arms:
        mine = [r for r in runs if r["arm"] == arm]
        pairs = [(r["grpo"], b["grpo"]) for r in mine for b in runs
                 if b["arm"] == args.arms[0] and (b["data_seed"], b["seed"]) == (r["data_seed"], r["seed"])]
        deltas = [a - b for a, b in pairs]
        summary[arm] = {"runs": len(mine), "sft": statistics.fmean(r["sft"] for r in mine),
                        "grpo": statistics.fmean(r["grpo"] for r in mine),
                        "paired_delta_mean": statistics.fmean(deltas),
                        "paired_delta_se": statistics.stdev(deltas) / len(deltas) ** 0.5 if len(deltas) > 1 else 0.0,
                        "visual_tokens_per_prompt": statistics.fmean(r["visual_tokens_per_prompt"] for r in mine),
                        "grpo_step_seconds": statistics.fmean(r["grpo_step_seconds"] for r in mine)}
        inf = [r for r in inference if r["arm"] == arm]
        if inf:
            summary[arm]["inference_only_delta"] = statistics.fmean(r["with_drop"] - r["no_drop"] for r in inf)
            summary[arm]["inference_only_no_drop"] = statistics.fmean(r["no_drop"] for r in inf)
    out = {"args": vars(args), "runs": runs, "inference_only": inference, "summary": summary,
           "seconds": time.perf_counter() - start}
    (root / "results.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
