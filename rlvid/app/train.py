"""`rlvid train` / `rlvid sft`: recipe -> trainer(s) -> final model folder.

With `trainer.algorithm: grpo` and `sft.steps > 0`, `rlvid train` runs two stages in one run
folder: SFT into output_dir/sft/ (its own checkpoints and final model), then GRPO from that
model (policy and reference) in output_dir/. A finished SFT stage (its final/ folder is
complete) is not rerun, so `trainer.resume: auto` continues whichever stage was interrupted.
"""

from __future__ import annotations

import logging
from pathlib import Path

from rlvid.app.compose import grpo_trainer, sft_trainer, sft_warm_start
from rlvid.app.stream_recipe import is_streaming_recipe
from rlvid.config import load_recipe
from rlvid.redact import install_log_filter


def _load(recipe_path: str, overrides: list[str] | None):
    recipe = load_recipe(recipe_path, overrides or [])
    return recipe, Path(recipe_path).resolve().parent


def run_sft(recipe_path: str, overrides: list[str] | None = None) -> Path:
    """SFT alone; the final model goes to output_dir/final."""
    recipe, recipe_dir = _load(recipe_path, overrides)
    return sft_trainer(recipe, recipe_dir).fit()


def run_train(recipe_path: str, overrides: list[str] | None = None) -> Path:
    """The recipe's algorithm (grpo, with its optional SFT warm start, or sft); returns the final model folder."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    install_log_filter()  # secret values never reach a log line
    if is_streaming_recipe(recipe_path):  # a `streaming:` section: the tiny streaming LM (docs/streaming.md)
        from rlvid.app.streaming import run_stream_train

        return run_stream_train(recipe_path, overrides)
    recipe, recipe_dir = _load(recipe_path, overrides)
    algorithm = recipe.trainer.algorithm
    if algorithm == "sft":
        return sft_trainer(recipe, recipe_dir).fit()
    if algorithm == "mdpo":
        from rlvid.app.mdpo import run_mdpo

        return run_mdpo(recipe, recipe_dir)
    model_path = None
    if recipe.sft.steps > 0:
        model_path = str(sft_warm_start(recipe, recipe_dir))
    return grpo_trainer(recipe, recipe_dir, model_path=model_path).fit()
