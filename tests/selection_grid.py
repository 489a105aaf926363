"""The jobs of the selection grid on the flash task (issue 17 item 3), for scripts/bench_selection.py.

Test code (scripts put tests/ on sys.path). One grid = a start model that reads the pixels, a fixed held-out set
(the 60 val clips of the flash setup's data seed 0, the clips the start model was judged on) and per data seed a
fresh pool of flash clips. Jobs, each one process, each writing `done.json` last so a rerun skips it:

- `pool-D`: draw pool D (`make_synthetic_data`, seed D, every clip in train);
- `select-D`: `rlvid select` on pool D with the start model: k sampled rollouts per clip, `variance_aware`
  (the top `fraction` by reward variance, never a clip whose k rewards were all equal: Temporal-R1's recipe);
- `grpo-D-S-ARM`: GRPO from the start model, trainer seed S, on `full` (the pool), `variance` (the selected
  clips), `random` (as many clips as `variance` kept, drawn with seed (D, S)), or `dynamic` (the pool with
  `selection.online: dynamic_sampling`). Every run evaluates the held-out clips at step 0 and every
  `eval_every` steps (greedy, the eval hook) and saves the greedy answers at step 0 and at the end.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

from pixel_learning import FLASH_VIDEO, MIOU, REWARDS
from tiny_setup import write_recipe

ARMS = ("full", "variance", "random", "dynamic")
PROMPTS_PER_STEP, GROUP = 8, 8
HELD_OUT_SEED, HELD_OUT_N = 0, 300  # the flash setup of the start model: 240 train / 60 held out


def make_held_out(out: Path) -> Path:
    """The held-out clips (val.jsonl of the flash setup with data seed 0: byte-identical clips on any machine)."""
    from rlvid.data.synthetic import make_synthetic_data

    if not (out / "val.jsonl").is_file():
        make_synthetic_data(out, n=HELD_OUT_N, seed=HELD_OUT_SEED, duration=12.0, fps=2, width=64, height=48,
                            splits=(0.8, 0.2, 0.0), tasks=("flash_grounding",))
    return out / "val.jsonl"


def make_pool(out: Path, data_seed: int, size: int) -> Path:
    """A pool of `size` flash clips drawn with `data_seed` (all in train.jsonl)."""
    from rlvid.data.synthetic import make_synthetic_data

    if not (out / "train.jsonl").is_file():
        make_synthetic_data(out, n=size, seed=data_seed, duration=12.0, fps=2, width=64, height=48,
                            splits=(1.0, 0.0, 0.0), tasks=("flash_grounding",))
    return out / "train.jsonl"


def grpo_overrides(cfg: dict[str, Any], seed: int, arm: str, steps: int) -> dict[str, Any]:
    """The GRPO settings of run_pixel_learning (8 prompts x G 8, dapo, beta 0), fp32, with held-out evals."""
    return {
        "model": {"dtype": "fp32"},
        "data": {"video": dict(FLASH_VIDEO)},
        "rollout": {"max_new_tokens": 16, "num_generations": GROUP, "temperature": 1.0},
        "rewards": REWARDS,
        "trainer": {"seed": seed, "max_steps": steps, "lr": cfg["lr"], "global_prompts_per_step": PROMPTS_PER_STEP,
                    "micro_batch_size_per_device": 32, "loss_agg": "dapo", "beta": 0.0, "precision": "no",
                    "eval_steps": cfg["eval_every"], "eval_on_start": True, "save_total_limit": 1},
        "selection": {"online": "dynamic_sampling" if arm == "dynamic" else "none", "max_tries": cfg["max_tries"]},
        "hooks": [{"name": "eval_grounding"},
                  {"name": "save_samples", "every_n_steps": steps, "kwargs": {"num_samples": 10_000}}],
    }


def run_pool(cfg: dict[str, Any], out: Path, data_seed: int) -> dict[str, Any]:
    path = make_pool(out / "pools" / f"pool{data_seed}", data_seed, cfg["pool"])
    return {"pool": str(path)}


def run_select(cfg: dict[str, Any], out: Path, data_seed: int, work: Path) -> dict[str, Any]:
    """`rlvid select` on the pool with the start model; the selected clips and the per-clip stats."""
    from rlvid.app.select import select_from_recipe

    pool = out / "pools" / f"pool{data_seed}" / "train.jsonl"
    setup = {"model": Path(cfg["start"]), "data": pool.parent}
    overrides = grpo_overrides(cfg, data_seed, "full", 1)
    overrides["selection"]["offline"] = {"batch_size": 16}
    overrides["data"]["val"] = str(make_held_out(out / "held_out"))
    recipe = write_recipe(work / "select.yaml", setup, work / "unused", overrides)
    if (work / "select").exists():
        shutil.rmtree(work / "select")
    chosen = select_from_recipe(recipe, work / "select", k=cfg["k"], strategy="variance_aware",
                                kwargs={"fraction": cfg["fraction"]})
    return {"selected": str(work / "select" / "selected.jsonl"), "stats": str(work / "select" / "stats.jsonl"),
            "kept": len(chosen.selection.ids), "pool_size": len(chosen.stats),
            "selection_rollouts": cfg["k"] * len(chosen.stats)}


def run_grpo(cfg: dict[str, Any], out: Path, data_seed: int, seed: int, arm: str, work: Path) -> dict[str, Any]:
    """One GRPO run; returns its held-out curve (step -> mIoU) and the rollouts spent by each eval step."""
    from rlvid.app.train import run_train
    from rlvid.data.loaders import load_jsonl, write_jsonl

    pool = out / "pools" / f"pool{data_seed}" / "train.jsonl"
    train = pool
    if arm in ("variance", "random"):
        chosen = json.loads((out / "jobs" / f"select-{data_seed}" / "done.json").read_text())
        train = Path(chosen["selected"])
        if arm == "random":
            samples = load_jsonl(pool).samples
            picked = random.Random(data_seed * 1000 + seed).sample(range(len(samples)), chosen["kept"])
            train = write_jsonl([samples[i] for i in sorted(picked)], work / "random.jsonl")
    setup = {"model": Path(cfg["start"]), "data": pool.parent}
    run_dir = work / "run"
    if run_dir.exists():  # a run killed half way starts again (runs are short)
        shutil.rmtree(run_dir)
    overrides = grpo_overrides(cfg, seed, arm, cfg["steps"])
    overrides["data"].update(train=str(train), val=str(make_held_out(out / "held_out")))
    recipe = write_recipe(work / "grpo.yaml", setup, run_dir, overrides)
    run_train(str(recipe))
    curve = read_curve(run_dir)
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)  # ~3 MB a run; the grid keeps its figures only
    if not cfg.get("keep_models"):
        shutil.rmtree(run_dir / "final", ignore_errors=True)
    return curve


def read_curve(run_dir: Path) -> dict[str, Any]:
    """Held-out mIoU and reward at each eval step, and the GRPO rollouts generated up to each step."""
    rows = [json.loads(line) for line in open(run_dir / "metrics.jsonl")]
    spent, cumulative = {0: 0}, 0
    for r in rows:
        if "loss" in r or "rewards/total" in r:  # a training step's row
            cumulative += int(r.get("selection/rollouts_spent", PROMPTS_PER_STEP * GROUP))
            spent[r["step"]] = cumulative
    evals = {r["step"]: r for r in rows if MIOU in r}
    return {"steps": sorted(evals), "mIoU": [evals[s][MIOU] for s in sorted(evals)],
            "reward": [evals[s].get("eval/rewards/total") for s in sorted(evals)],
            "rollouts": [spent[s] for s in sorted(evals)], "grpo_rollouts": cumulative}

