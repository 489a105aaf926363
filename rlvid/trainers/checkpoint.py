"""Crash-safe checkpoints: written to a temporary folder, marked complete, then renamed into place.

A checkpoint `output_dir/checkpoints/step-000012/` holds accelerate's state (model, optimizer,
RNG states of every process, registered objects such as the LR scheduler), `trainer_state.json`
(step, epoch: the data position, since the data order is a function of seed and epoch) and a
`complete` marker written last. A save killed midway leaves only a `.tmp-*` folder, which
`latest_checkpoint` ignores and the next save removes, so the last good checkpoint is never damaged.

Without LoRA (and with the model saved whole, as `model.safetensors`: one process, DDP), the folder also
holds the model's `config.json`, generation config and processor files (`write_hf_files`), so
`from_pretrained(step-N)` and `rlvid eval --checkpoint step-N` load it as they load `final/`; resuming
reads only accelerate's files and is unchanged. Other checkpoints are turned into a model folder with
`rlvid export` (`rlvid.app.export`).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

COMPLETE = "complete"
STATE_FILE = "trainer_state.json"


def checkpoint_root(output_dir: str | Path) -> Path:
    return Path(output_dir) / "checkpoints"


def save_checkpoint(accelerator, output_dir: str | Path, step: int, state: dict, keep: int = 0,
                    extra_files: Callable[[Path], None] | None = None) -> Path:
    """Save the training state after `step` optimizer steps; call on every process.

    `extra_files(folder)` runs on the main process before the folder is marked complete (the loop writes
    the HF model files there)."""
    root = checkpoint_root(output_dir)
    final = root / f"step-{step:06d}"
    tmp = root / f".tmp-step-{step:06d}"
    if accelerator.is_main_process:
        root.mkdir(parents=True, exist_ok=True)
        for stale in root.glob(".tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
    accelerator.wait_for_everyone()
    check_free_space(root, estimate_checkpoint_bytes(root))
    try:
        accelerator.save_state(str(tmp), safe_serialization=True)
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            (tmp / STATE_FILE).write_text(json.dumps(dict(state, step=step), indent=2) + "\n")
            if extra_files is not None:
                extra_files(tmp)
            _fsync_dir(tmp)
            (tmp / COMPLETE).write_text("ok\n")
    except (OSError, RuntimeError) as e:
        raise CheckpointSaveError(_save_failure(tmp, e)) from e
    if accelerator.is_main_process:
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync_dir(root)
        prune_checkpoints(root, keep, protect=final)
    accelerator.wait_for_everyone()
    return final


class CheckpointSaveError(OSError):
    """A checkpoint could not be written; the message names the folder and whether the disk is full."""


def step_of(path: Path) -> int:
    """The step number of a `step-N` folder (-1 when the name does not parse)."""
    try:
        return int(path.name.split("-", 1)[1])
    except (IndexError, ValueError):
        return -1


def complete_checkpoints(output_dir: str | Path) -> list[Path]:
    """Complete checkpoints under output_dir, oldest step first (by number, not by name)."""
    root = checkpoint_root(output_dir)
    if not root.is_dir():
        return []
    return sorted((p for p in root.glob("step-*") if (p / COMPLETE).is_file()), key=step_of)


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest complete checkpoint under output_dir, or None."""
    done = complete_checkpoints(output_dir)
    return done[-1] if done else None


def estimate_checkpoint_bytes(root: Path) -> int:
    """Size of the newest complete checkpoint (the next one will be about as large); 0 when there is none."""
    newest = latest_checkpoint(root.parent)
    if newest is None:
        return 0
    return sum(f.stat().st_size for f in newest.rglob("*") if f.is_file())


def check_free_space(root: Path, needed: int, margin: float = 1.1) -> None:
    """Refuse to start a save that cannot fit (needed = the previous checkpoint's size)."""
    if needed <= 0:
        return
    free = shutil.disk_usage(root).free
    if free < needed * margin:
        raise CheckpointSaveError(
            f"not enough space to save a checkpoint in {root}: {free / 2**30:.2f} GiB free, the last checkpoint "
            f"took {needed / 2**30:.2f} GiB; free some space (or lower trainer.save_total_limit) and resume")


def _save_failure(tmp: Path, err: BaseException) -> str:
    """A save error in words: the folder, and 'no space left' when the disk is full."""
    text = str(err)
    full = getattr(err, "errno", None) == errno.ENOSPC or "No space left" in text or "unexpected pos" in text
    try:
        free = f"{shutil.disk_usage(tmp.parent).free / 2**20:.0f} MiB free"
    except OSError:
        free = "free space unknown"
    why = "no space left on device" if full else "write failed"
    return (f"saving checkpoint {tmp.name.replace('.tmp-', '')} in {tmp.parent} failed: {why} ({free}); "
            f"the previous checkpoint is intact. Cause: {text.splitlines()[0] if text else type(err).__name__}")


def resolve_resume(resume: str, output_dir: str | Path) -> Path | None:
    """`trainer.resume` -> a checkpoint folder: none, auto (latest complete, if any) or an explicit path."""
    if resume in ("", "none"):
        return None
    if resume == "auto":
        return latest_checkpoint(output_dir)
    path = Path(resume)
    if not (path / COMPLETE).is_file():
        raise FileNotFoundError(f"trainer.resume={resume!r} is not a complete checkpoint (no {COMPLETE!r} marker)")
    return path


def load_checkpoint(accelerator, path: str | Path) -> dict:
    """Restore model, optimizer, scheduler and RNG states; returns the trainer state (step, epoch, ...)."""
    accelerator.load_state(str(path))
    return json.loads((Path(path) / STATE_FILE).read_text())


def prune_checkpoints(root: Path, keep: int, protect: Path | None = None) -> None:
    """Remove the oldest complete checkpoints (by step number) beyond `keep` (0 = keep all); never `protect`
    (the checkpoint just written)."""
    if keep <= 0:
        return
    done = complete_checkpoints(root.parent)
    for old in done[:-keep]:
        if protect is None or old.resolve() != Path(protect).resolve():
            shutil.rmtree(old, ignore_errors=True)


def save_final_model(accelerator, model, processor, out: str | Path, save_merged: bool = True) -> Path:
    """The trained model as an HF folder (`from_pretrained` loads it) with the processor next to it.

    With LoRA: `save_merged` writes the adapters merged into the base weights; otherwise the
    folder holds the adapter only (load it with peft). Written to a temp folder, then renamed.
    """
    out = Path(out)
    tmp = out.with_name(f".tmp-{out.name}")
    unwrapped = accelerator.unwrap_model(model)
    state_dict = accelerator.get_state_dict(model)
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        is_peft = hasattr(unwrapped, "merge_and_unload")
        if is_peft and save_merged:
            merged = unwrapped.merge_and_unload()
            merged.save_pretrained(tmp)
        else:
            unwrapped.save_pretrained(tmp, state_dict=None if is_peft else state_dict)
        processor.save_pretrained(tmp)
        (tmp / COMPLETE).write_text("ok\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    accelerator.wait_for_everyone()
    return out


MODEL_WEIGHTS = "model.safetensors"  # what accelerate's save_state writes for a model saved whole


def is_peft(model) -> bool:
    return hasattr(model, "merge_and_unload") and hasattr(model, "peft_config")


def write_hf_files(model, processor, folder: str | Path) -> bool:
    """Write config.json, generation_config.json and the processor next to a checkpoint's `model.safetensors`,
    so `from_pretrained(folder)` loads it; returns False (and writes nothing) where the weights there are not a
    plain model's (LoRA adapters, FSDP/DeepSpeed shards): those need `rlvid export`."""
    folder = Path(folder)
    if is_peft(model) or not (folder / MODEL_WEIGHTS).is_file():
        return False
    model.config.save_pretrained(folder)
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(folder)
    processor.save_pretrained(folder)
    return True


def is_model_folder(path: str | Path) -> bool:
    """True for a folder `from_pretrained` can load (config.json next to its weights)."""
    path = Path(path)
    return (path / "config.json").is_file()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
