"""Small CPU fixtures for trainer tests and benchmarks: a tiny model, synthetic data and a recipe using them.

Test code, kept out of the package: tests import it as `tiny_setup` (tests/ is on pytest's path);
scripts/ put tests/ on sys.path first.
"""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

REPO_RECIPES = Path(__file__).resolve().parents[1] / "recipes"

SMALL_VIDEO = {"fps": 1.0, "min_frames": 4, "max_frames": 4, "total_pixels": 4 * 3136,
               "min_pixels_per_frame": 3136, "max_pixels_per_frame": 3136}


def make_tiny_setup(root: str | Path, arch: str = "qwen2_5_vl", n: int = 40, seed: int = 0) -> dict[str, Path]:
    """Tiny model + synthetic temporal-grounding data under `root` (reused if already there)."""
    from rlvid.data.synthetic import make_synthetic_data
    from rlvid.models.tiny import make_tiny_model

    root = Path(root)
    model = root / f"model-{arch}"
    data = root / "data"
    if not (model / "config.json").is_file():
        make_tiny_model(model, arch=arch)
    if not (data / "train.jsonl").is_file():
        make_synthetic_data(data, n=n, seed=seed, tasks=("temporal_grounding",))
    return {"model": model, "data": data}


# Grounding learning setup (tests/test_grpo_learning.py). The tiny model does not learn to read an interval from the
# pixels within a CPU test's budget (SFT loss stays at the answer prior's entropy), so what RL can improve is where
# the intervals lie: SFT on 4 s clips teaches the answer format and intervals that fit 4 s clips; GRPO on 12 s clips
# must move them to where the IoU reward is (held-out mIoU ~0.1 -> ~0.38), and a sign-flipped control must not.
GROUNDING_VIDEO = {"fps": 2.0, "min_frames": 4, "max_frames": 16, "total_pixels": 16 * 1568,
                   "min_pixels_per_frame": 3136, "max_pixels_per_frame": 3136}  # 8 frame pairs x 2 tokens


def make_grounding_setup(root: str | Path, arch: str = "qwen2_5_vl", seed: int = 0, n_sft: int = 200,
                         n_rl: int = 360, sft_duration: float = 4.0, rl_duration: float = 12.0
                         ) -> dict[str, Path]:
    """Tiny model + two temporal-grounding sets at 2 fps: `sft_data` (short clips) and `data` (long clips, 20% val).

    `data` is what GRPO trains and is evaluated on (val: n_rl // 5 held-out clips); `sft_data` is for the warm start.
    Reused if already there.
    """
    from rlvid.data.synthetic import make_synthetic_data
    from rlvid.models.tiny import make_tiny_model

    root = Path(root)
    model, sft_data, data = root / f"model-{arch}", root / "sft_data", root / "rl_data"
    if not (model / "config.json").is_file():
        make_tiny_model(model, arch=arch)
    if not (sft_data / "train.jsonl").is_file():
        make_synthetic_data(sft_data, n=n_sft, seed=seed + 1, duration=sft_duration, fps=2,
                            tasks=("temporal_grounding",))
    if not (data / "train.jsonl").is_file():
        make_synthetic_data(data, n=n_rl, seed=seed, duration=rl_duration, fps=2, splits=(0.8, 0.2, 0.0),
                            tasks=("temporal_grounding",))
    return {"model": model, "sft_data": sft_data, "data": data}


def write_recipe(path: str | Path, setup: dict[str, Path], output_dir: str | Path, overrides: dict | None = None
                 ) -> Path:
    """A GRPO recipe on the tiny setup (small videos, short completions, no wandb), merged with `overrides`."""
    recipe = {
        "base": str(REPO_RECIPES / "base.yaml"),
        "model": {"path": str(setup["model"])},
        "data": {"train": str(setup["data"] / "train.jsonl"), "val": str(setup["data"] / "val.jsonl"),
                 "video": dict(SMALL_VIDEO), "reasoning": False},  # short completions: the answer only
        "rollout": {"num_generations": 4, "max_new_tokens": 8},
        "trainer": {"output_dir": str(output_dir), "global_prompts_per_step": 2, "micro_batch_size_per_device": 4,
                    "max_steps": 2, "lr": 1.0e-3, "progress_bar": False},
        "rewards": {"functions": [{"name": "format", "weight": 0.5, "kwargs": {"think": "optional"}},
                                  {"name": "temporal_iou", "weight": 0.5}]},
        "logging": {"wandb": "disabled"},
    }
    _merge(recipe, overrides or {})
    path = Path(path)
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def merged(base: dict, overrides: dict | None) -> dict:
    """A deep copy of `base` with `overrides` merged in (nested dicts merge, other values replace)."""
    out = copy.deepcopy(base)
    _merge(out, copy.deepcopy(overrides or {}))
    return out


def _merge(into: dict, new: dict) -> None:
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            _merge(into[k], v)
        else:
            into[k] = v
