"""Benchmark: GRPO on a variance-selected subset vs a random subset of the same size, equal rollout budget.

On the tiny Qwen2.5-VL and synthetic temporal-grounding clips: a short SFT warm start; `rlvid
select` (k rollouts per train sample with the SFT model); then, per seed, GRPO from the SFT model on
(a) the top-variance subset and (b) a random subset of the same size, with the same steps, prompts
per step and G, so both spend the same rollouts. Held-out reward (greedy, val + test splits, the
recipe's rewards) is measured before and after with the same code; the figure to read is the
held-out reward gain per 1,000 GRPO rollouts, side by side. The selection's own rollouts are
reported too (they are spent once and reused by every later run on the subset).

    python scripts/bench_selection.py --n 160 --k 8 --subset 32 --steps 32 --seeds 0 1
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

from data_selection.cli import select_from_recipe
from rewards import compose_rewards
from rlvid.config import load_recipe
from rlvid.data.loaders import load_jsonl, write_jsonl
from rlvid.data.recipe_data import make_input_builder
from rlvid.eval.predict import predict
from rlvid.models.loading import load_policy, load_processor
from rlvid.trainers.hooks import reward_columns
from rlvid.trainers.testing import make_tiny_setup, write_recipe
from rlvid.trainers.train_cli import run_train, sft_warm_start


def held_out_reward(recipe_path: Path, model_path: str, samples) -> float:
    """Mean total reward of greedy completions on `samples` (the recipe's rewards and video settings)."""
    recipe = load_recipe(recipe_path)
    model = load_policy(recipe.model, model_path)
    processor = load_processor(model_path)
    completions = predict(model, make_input_builder(recipe, processor), samples, batch_size=8,
                          max_new_tokens=recipe.rollout.max_new_tokens)
    reward_set = compose_rewards(recipe.rewards.functions, base_dir=recipe_path.parent)
    return statistics.fmean(reward_set(completions, **reward_columns(samples)).total)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=None, help="work folder (default: a temporary one)")
    ap.add_argument("--n", type=int, default=160, help="synthetic clips (80%% train, 10%% val, 10%% test)")
    ap.add_argument("--k", type=int, default=8, help="rollouts per train sample for selection")
    ap.add_argument("--subset", type=int, default=32, help="samples per training subset")
    ap.add_argument("--steps", type=int, default=32, help="GRPO steps per arm")
    ap.add_argument("--sft-steps", type=int, default=25)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--out", default=None, help="JSON results file (default: ROOT/results.json)")
    args = ap.parse_args()
    root = Path(args.root or tempfile.mkdtemp(prefix="bench_selection_"))
    start = time.perf_counter()

    setup = make_tiny_setup(root, n=args.n)
    base = {
        "rollout": {"num_generations": 8, "max_new_tokens": 16},
        "sft": {"steps": args.sft_steps, "lr": 3.0e-3, "global_samples_per_step": 8},
        "trainer": {"max_steps": args.steps, "lr": 2.0e-3, "global_prompts_per_step": 2,
                    "micro_batch_size_per_device": 16, "loss_agg": "dapo", "save_total_limit": 1},
        "data": {"val": None},
    }
    sft_recipe = write_recipe(root / "sft.yaml", setup, root / "sft_run", base)
    sft_model = sft_warm_start(load_recipe(sft_recipe), root)
    held_out = load_jsonl(setup["data"] / "val.jsonl").samples + load_jsonl(setup["data"] / "test.jsonl").samples
    before = held_out_reward(sft_recipe, str(sft_model), held_out)

    select_recipe = write_recipe(root / "select.yaml", setup, root / "unused", {**base, "model": {"path": str(
        sft_model)}})
    chosen = select_from_recipe(select_recipe, root / "select", k=args.k, strategy="top_variance",
                                kwargs={"n": args.subset})
    by_id = {s.id: s for s in load_jsonl(setup["data"] / "train.jsonl").samples}
    stats = {s.id: s for s in chosen.stats}
    results = {"before": before, "selection_rollouts": args.k * len(by_id), "arms": []}
    for seed in args.seeds:
        rng = random.Random(seed)
        subsets = {"variance": chosen.selection.ids, "random": rng.sample(sorted(by_id), args.subset)}
        for arm, ids in subsets.items():
            data = write_jsonl([by_id[i] for i in ids], root / f"{arm}-{seed}" / "train.jsonl")
            recipe = write_recipe(root / f"{arm}-{seed}.yaml", setup, root / f"{arm}-{seed}" / "run", {
                **base, "model": {"path": str(sft_model)}, "sft": {"steps": 0},
                "data": {"train": str(data), "val": None}, "trainer": {**base["trainer"], "seed": seed}})
            final = run_train(str(recipe))
            after = held_out_reward(recipe, str(final), held_out)
            rollouts = args.steps * 2 * 8
            results["arms"].append({
                "arm": arm, "seed": seed, "after": after, "gain": after - before, "grpo_rollouts": rollouts,
                "gain_per_1k_rollouts": (after - before) / rollouts * 1000,
                "subset_mean_variance": statistics.fmean(stats[i].variance for i in ids),
                "subset_zero_variance": sum(stats[i].variance == 0 for i in ids)})
            print(json.dumps(results["arms"][-1]))
    results["seconds"] = time.perf_counter() - start
    Path(args.out or root / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
