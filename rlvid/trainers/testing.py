"""Small CPU fixtures for trainer tests and examples: a tiny model, synthetic data and a recipe using them."""

from __future__ import annotations

from pathlib import Path

import yaml

REPO_RECIPES = Path(__file__).resolve().parents[2] / "recipes"

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


def write_recipe(path: str | Path, setup: dict[str, Path], output_dir: str | Path, overrides: dict | None = None
                 ) -> Path:
    """A GRPO recipe on the tiny setup (small videos, short completions, no wandb), merged with `overrides`."""
    recipe = {
        "base": str(REPO_RECIPES / "base.yaml"),
        "model": {"path": str(setup["model"])},
        "data": {"train": str(setup["data"] / "train.jsonl"), "val": str(setup["data"] / "val.jsonl"),
                 "video": dict(SMALL_VIDEO)},
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


def _merge(into: dict, new: dict) -> None:
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            _merge(into[k], v)
        else:
            into[k] = v
