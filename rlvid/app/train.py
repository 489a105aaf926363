"""`rlvid train` / `rlvid sft`: recipe -> trainer(s) -> final model folder.

With `trainer.algorithm: grpo` and `sft.steps > 0`, `rlvid train` runs two stages in one run
folder: SFT into output_dir/sft/ (its own checkpoints and final model), then GRPO from that
model (policy and reference) in output_dir/. A finished SFT stage (its final/ folder is
complete) is not rerun, so `trainer.resume: auto` continues whichever stage was interrupted.
"""

from __future__ import annotations

import os
import shlex
import time
from pathlib import Path

from rlvid.app.compose import grpo_trainer, sft_trainer, sft_warm_start
from rlvid.config import load_recipe
from rlvid.config.recipe_paths import find_recipe
from rlvid.redact import install_log_filter
from rlvid.trainers import console
from rlvid.trainers.checkpoint import COMPLETE
from rlvid.trainers.summary import format_summary


def _load(recipe_path: str, overrides: list[str] | None):
    recipe = load_recipe(recipe_path, overrides or [])
    console.configure_console(recipe.trainer.log_level)  # quiet third-party logs, nothing on the progress bar
    return recipe, find_recipe(recipe_path).resolve().parent  # a packaged recipe's name resolves to its folder


def next_commands(command: str, recipe_path: str, overrides: list[str] | None, output_dir: str | Path,
                  split: str = "val") -> str:
    """The exact commands to plot, evaluate (on `split`) and resume/extend this run."""
    again = shlex.join(["rlvid", command, recipe_path, *[o for o in overrides or [] if "trainer.resume" not in o]])
    out = shlex.quote(str(output_dir))
    rec = shlex.quote(recipe_path)
    return "\n".join([
        "next:",
        f"  plot:     rlvid plot {out}",
        f"  evaluate: rlvid eval {rec} --checkpoint {shlex.quote(str(Path(output_dir) / 'final'))} --split {split}",
        f"  every checkpoint: rlvid eval {rec} --run {out} --split {split}",
        f"  resume:   {again} trainer.resume=auto   (to train longer, raise trainer.max_steps too)",
    ])


def _finish(trainer, command: str, recipe_path: str, overrides: list[str] | None, final: Path) -> Path:
    if trainer.accelerator.is_main_process:
        steps = trainer.step
        split = "test" if trainer.recipe.data.test else "val"
        console.write(format_summary(trainer.output_dir, trainer.stage, steps, trainer.run_seconds, final) + "\n"
                      + next_commands(command, recipe_path, overrides, trainer.output_dir, split))
    return final


def _sft_stage(recipe, recipe_dir: Path) -> str:
    """The SFT warm start (reused when finished), with its summary on the main process; returns the model path."""
    sft_dir = Path(recipe.trainer.output_dir) / "sft"
    reused = (sft_dir / "final" / COMPLETE).is_file()
    started = time.perf_counter()
    model_path = str(sft_warm_start(recipe, recipe_dir))
    if os.environ.get("RANK", "0") != "0":  # the summary once, on the main process
        pass
    elif reused:
        console.write(f"sft: reusing the finished SFT stage {model_path}")
    else:
        console.write(format_summary(sft_dir, "sft", recipe.sft.steps, time.perf_counter() - started, model_path))
    return model_path


def run_sft(recipe_path: str, overrides: list[str] | None = None) -> Path:
    """SFT alone; the final model goes to output_dir/final."""
    recipe, recipe_dir = _load(recipe_path, overrides)
    if recipe.streaming.enabled:  # the streaming warm start alone (docs/streaming.md)
        from rlvid.app.stream_compose import streaming_sft_trainer

        trainer = streaming_sft_trainer(recipe, recipe_dir)
        return _finish(trainer, "sft", recipe_path, overrides, trainer.fit())
    trainer = sft_trainer(recipe, recipe_dir)
    return _finish(trainer, "sft", recipe_path, overrides, trainer.fit())


def run_train(recipe_path: str, overrides: list[str] | None = None) -> Path:
    """The recipe's algorithm (grpo, with its optional SFT warm start, or sft); returns the final model folder."""
    recipe, recipe_dir = _load(recipe_path, overrides)
    install_log_filter()  # secret values never reach a log line
    if recipe.streaming.enabled:  # streaming GRPO / M-DPO on the tiny streaming LM (docs/streaming.md)
        from rlvid.app.streaming import run_stream_train

        trainer = run_stream_train(recipe, recipe_dir)
        return _finish(trainer, "train", recipe_path, overrides, trainer.final_dir)
    algorithm = recipe.trainer.algorithm
    if algorithm == "sft":
        trainer = sft_trainer(recipe, recipe_dir)
        return _finish(trainer, "train", recipe_path, overrides, trainer.fit())
    model_path = _sft_stage(recipe, recipe_dir) if recipe.sft.steps > 0 else None
    if algorithm == "mdpo":
        from rlvid.app.mdpo import round_dir, run_mdpo

        final = run_mdpo(recipe, recipe_dir, model_path=model_path)
        if os.environ.get("RANK", "0") == "0":
            split = "test" if recipe.data.test else "val"
            last = round_dir(recipe, recipe.mdpo.rounds - 1)
            console.write(next_commands("train", recipe_path, overrides, last, split))
        return final
    trainer = grpo_trainer(recipe, recipe_dir, model_path=model_path)
    return _finish(trainer, "train", recipe_path, overrides, trainer.fit())
