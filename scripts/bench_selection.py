"""Benchmark: GRPO on a variance-selected subset vs a random subset of the same size, equal rollout budget.

Setting: the learning test's (tests/test_grpo_learning.py): tiny Qwen2.5-VL, synthetic temporal-grounding clips,
SFT warm start on 4 s clips (format + intervals that fit 4 s), GRPO on 12 s clips (288 train, 72 held out). Per
data seed: SFT; `rlvid select` with the SFT model (k sampled rollouts per train clip, temperature 1); then per
trainer seed GRPO from the SFT model on (a) the `--subset` highest-variance clips, (b) a random subset of the same
size, (c) optionally the whole train split, (d) optionally the whole split drawn by `variance_weights` (the
trainer's weighted sampler; zero-variance clips get weight 0), all with the same steps, prompts per step and G, so
every arm spends the same GRPO rollouts. Held-out figures are the eval hook's at the end of each run (greedy, the
72 held-out clips, same code as after SFT): total reward (format 0.5 + temporal IoU 0.5) and mIoU. The figure to
read is the held-out reward gain per 1,000 GRPO rollouts, side by side; the selection's own rollouts are reported
apart (spent once, reused by every later run on the subset).

    OMP_NUM_THREADS=1 python scripts/bench_selection.py --data-seeds 0 1 2 3 --seeds 0 1 2 3 \
        --arms variance random full weighted
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from rlvid.app.select import select_from_recipe, select_from_stats
from rlvid.app.train import run_train
from rlvid.data.loaders import load_jsonl, write_jsonl

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the tiny fixtures live with the tests
from tiny_setup import GROUNDING_VIDEO, make_grounding_setup, write_recipe  # noqa: E402

REWARD, MIOU = "eval/rewards/total", "eval/temporal_grounding/mIoU"


def last_eval(output_dir: Path) -> dict[str, float]:
    rows = [json.loads(line) for line in open(output_dir / "metrics.jsonl")]
    return [r for r in rows if REWARD in r][-1]


def _weighted_mean(ids, stats, field: str, arm: str, weighted) -> float:
    """Mean of a stats field over the arm's training distribution (sampling weights for the weighted arm)."""
    w = weighted.selection.weights if arm == "weighted" else dict.fromkeys(ids, 1.0)
    return sum(w[i] * getattr(stats[i], field) for i in ids) / sum(w[i] for i in ids)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=None, help="work folder (default: a temporary one)")
    ap.add_argument("--k", type=int, default=8, help="rollouts per train clip for selection")
    ap.add_argument("--subset", type=int, default=64, help="clips per training subset")
    ap.add_argument("--steps", type=int, default=40, help="GRPO steps per arm (8 prompts x G=8 each)")
    ap.add_argument("--sft-steps", type=int, default=60)
    ap.add_argument("--data-seeds", type=int, nargs="+", default=[0], help="data + model seeds (one SFT each)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="trainer seeds (and random-subset seeds)")
    ap.add_argument("--arms", nargs="+", default=["variance", "random"],
                    choices=["variance", "random", "full", "weighted"])
    ap.add_argument("--out", default=None, help="JSON results file (default: ROOT/results.json)")
    args = ap.parse_args()
    torch.set_num_threads(1)  # tiny forwards: one thread is ~10x faster on shared cores
    root = Path(args.root or tempfile.mkdtemp(prefix="bench_selection_"))
    start = time.perf_counter()
    common = {"data": {"video": dict(GROUNDING_VIDEO)}, "rollout": {"max_new_tokens": 16},
              "hooks": [{"name": "eval_grounding"}]}
    prompts_per_step, group = 8, 8
    results: dict = {"args": vars(args), "data_seeds": []}
    for data_seed in args.data_seeds:
        work = root / f"data{data_seed}"
        setup = make_grounding_setup(work / "setup", seed=data_seed)
        val = str(setup["data"] / "val.jsonl")
        sft_recipe = write_recipe(work / "sft.yaml", {"model": setup["model"], "data": setup["sft_data"]},
                                  work / "sft", {
            **common, "trainer": {"seed": 0, "eval_steps": 1000, "algorithm": "sft",
                                  "micro_batch_size_per_device": 16},
            "data": {**common["data"], "val": val},
            "sft": {"steps": args.sft_steps, "lr": 3.0e-3, "global_samples_per_step": 8}})
        sft_model = run_train(str(sft_recipe))
        before = last_eval(work / "sft")
        grpo = {**common, "trainer": {"eval_steps": 1000, "max_steps": args.steps, "lr": 1.0e-3,
                                      "global_prompts_per_step": prompts_per_step, "micro_batch_size_per_device": 32,
                                      "loss_agg": "dapo", "save_total_limit": 1},
                "rollout": {**common["rollout"], "num_generations": group, "temperature": 1.0}}
        select_recipe = write_recipe(work / "select.yaml", {"model": sft_model, "data": setup["data"]},
                                     work / "unused", grpo)
        t0 = time.perf_counter()
        chosen = select_from_recipe(select_recipe, work / "select", k=args.k, strategy="top_variance",
                                    kwargs={"n": args.subset})
        select_seconds = time.perf_counter() - t0
        weighted = select_from_stats(work / "select" / "stats.jsonl", work / "select-weighted", "variance_weights")
        train = load_jsonl(setup["data"] / "train.jsonl").samples
        by_id = {s.id: s for s in train}
        stats = {s.id: s for s in chosen.stats}
        entry = {"data_seed": data_seed, "before": {"reward": before[REWARD], "mIoU": before[MIOU]},
                 "selection_rollouts": args.k * len(train), "selection_seconds": select_seconds,
                 "train_mean_variance": statistics.fmean(s.variance for s in chosen.stats),
                 "train_zero_variance": sum(s.variance == 0 for s in chosen.stats), "arms": []}
        for seed in args.seeds:
            subsets = {"variance": chosen.selection.ids, "weighted": weighted.selection.ids,
                       "random": random.Random(seed).sample(sorted(by_id), args.subset),
                       "full": sorted(by_id)}
            for arm in args.arms:
                ids = subsets[arm]
                data = (weighted.out_dir / "selected.jsonl" if arm == "weighted"  # samples carry their weights
                        else write_jsonl([by_id[i] for i in ids], work / f"{arm}-{seed}" / "train.jsonl"))
                recipe = write_recipe(work / f"{arm}-{seed}.yaml", {"model": sft_model, "data": setup["data"]},
                                      work / f"{arm}-{seed}" / "run", {
                    **grpo, "data": {**grpo["data"], "train": str(data)},
                    "trainer": {**grpo["trainer"], "seed": seed}})
                t0 = time.perf_counter()
                run_train(str(recipe))
                after = last_eval(work / f"{arm}-{seed}" / "run")
                rollouts = args.steps * prompts_per_step * group
                row = {"arm": arm, "seed": seed, "reward": after[REWARD], "mIoU": after[MIOU],
                       "gain": after[REWARD] - before[REWARD], "mIoU_gain": after[MIOU] - before[MIOU],
                       "grpo_rollouts": rollouts,
                       "gain_per_1k_rollouts": (after[REWARD] - before[REWARD]) / rollouts * 1000,
                       "subset_mean_variance": _weighted_mean(ids, stats, "variance", arm, weighted),
                       "subset_mean_reward": _weighted_mean(ids, stats, "mean", arm, weighted),
                       "subset_zero_variance": sum(stats[i].variance == 0 for i in ids),
                       "seconds": time.perf_counter() - t0}
                entry["arms"].append(row)
                print(json.dumps({"data_seed": data_seed, **row}), flush=True)
        results["data_seeds"].append(entry)
    rows = [(e["data_seed"], r) for e in results["data_seeds"] for r in e["arms"]]
    results["summary"] = {arm: {
        "runs": len(g := [r for _, r in rows if r["arm"] == arm]),
        "mean_gain_per_1k_rollouts": statistics.fmean(r["gain_per_1k_rollouts"] for r in g),
        "stdev_gain_per_1k_rollouts": statistics.stdev(r["gain_per_1k_rollouts"] for r in g) if len(g) > 1 else 0.0,
        "mean_mIoU_gain": statistics.fmean(r["mIoU_gain"] for r in g)} for arm in args.arms}
    results["seconds"] = time.perf_counter() - start
    Path(args.out or root / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results["summary"], indent=2))


if __name__ == "__main__":
    main()
