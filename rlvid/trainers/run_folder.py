"""A run folder is owned by one run: its fingerprint is recorded, a second run is refused.

`output_dir/run.json` holds the fingerprint of what defines the run (the recipe with defaults
resolved, minus settings that may change between a run and its resume; the sizes and mtimes of
the data files; the rlvid version; the world size; the stage) and the wandb run id, so a resume
logs into the same wandb run. Before training:

- a folder that holds another run (run.json, checkpoints, final/ or metrics.jsonl) and no resume
  is refused, naming the way out (`trainer.resume=auto`, a new `output_dir`, or
  `trainer.overwrite_output_dir=true`, which removes that run's files first);
- a resume whose fingerprint differs is refused with the differing keys, unless
  `trainer.allow_changed_settings=true`;
- on resume, metrics.jsonl is cut back to the resumed step (a torn last line is dropped), so
  every step appears in it exactly once.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import rlvid
from rlvid.config import recipe_to_dict
from rlvid.data.atomic import write_text_atomic
from rlvid.data.sources import parse_sources
from rlvid.trainers.checkpoint import checkpoint_root

RUN_FILE = "run.json"
METRICS_FILE = "metrics.jsonl"
# What a run writes into its folder (removed by trainer.overwrite_output_dir).
RUN_ARTIFACTS = (RUN_FILE, METRICS_FILE, "checkpoints", "final", ".tmp-final", "eval", "samples", "bad_steps",
                 "wandb", "completions.jsonl")
# Settings that may change between a run and its resume without changing what is trained.
RESUMABLE_KEYS = (
    "trainer.resume", "trainer.overwrite_output_dir", "trainer.allow_changed_settings", "trainer.output_dir",
    "trainer.max_steps", "trainer.epochs", "trainer.save_steps", "trainer.save_total_limit",
    "trainer.logging_steps", "trainer.eval_steps", "trainer.progress_bar", "trainer.max_eval_samples",
    "trainer.eval_batch_size", "trainer.on_hook_error", "trainer.collective_timeout_s",
    "trainer.phase_warn_factor", "rewards.timeout_s", "logging", "hooks",
    "trainer.log_level", "trainer.eval_on_start", "trainer.log_completions",
)


class RunFolderError(RuntimeError):
    """The run folder belongs to another run, or a resume changed what defines the run."""


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as {"a.b.c": leaf}; lists stay leaves (compared whole)."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    out: dict[str, Any] = {}
    for k, v in tree.items():
        out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def _split_stamp(value: Any) -> Any:
    """The stamp of a split's file, or one per source when `data.<split>` is a list (rlvid.data.sources)."""
    if isinstance(value, list | tuple):
        return [_file_stamp(source.path) for source in parse_sources(value, "data")]
    return _file_stamp(value)


def _file_stamp(path: str | None) -> str | None:
    if not isinstance(path, str) or not path or not os.path.exists(path):
        return None
    st = os.stat(path)
    return f"{st.st_size} bytes, mtime {int(st.st_mtime)}"


def fingerprint(recipe, stage: str, world_size: int) -> dict[str, Any]:
    """What defines a run, as a flat {key: value} map (see the module docstring)."""
    flat = {k: v for k, v in flatten(recipe_to_dict(recipe)).items()
            if not any(k == r or k.startswith(r + ".") for r in RESUMABLE_KEYS)}
    for split in ("train", "val"):
        flat[f"files.data.{split}"] = _split_stamp(getattr(recipe.data, split))
    flat.update({"rlvid.version": rlvid.__version__, "run.world_size": world_size, "run.stage": stage})
    return flat


def holds_a_run(output_dir: Path) -> bool:
    """True when the folder has files of a training run (its own subfolders such as sft/ do not count)."""
    if (output_dir / RUN_FILE).is_file() or (output_dir / METRICS_FILE).is_file() or (output_dir / "final").exists():
        return True
    root = checkpoint_root(output_dir)
    return root.is_dir() and any(root.glob("step-*"))


def read_run_file(output_dir: Path) -> dict[str, Any]:
    path = output_dir / RUN_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except json.JSONDecodeError as e:
        raise RunFolderError(f"{path}: unreadable ({e}); move it away to start over") from e


def changed_keys(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """'key: old -> new' for every key whose value differs."""
    return [f"{k}: {old.get(k, '<unset>')!r} -> {new.get(k, '<unset>')!r}"
            for k in sorted(set(old) | set(new)) if old.get(k, "<unset>") != new.get(k, "<unset>")]


def check_run_folder(output_dir: Path, recipe, resuming: bool, current: dict[str, Any]) -> None:
    """Refuse a second run in the folder, or a resume with changed settings (read-only; call on every process)."""
    t = recipe.trainer
    if t.overwrite_output_dir:
        return
    if not resuming and t.resume != "auto" and holds_a_run(output_dir):
        raise RunFolderError(
                f"{output_dir} already holds a training run. Choose one: trainer.resume=auto to continue it, "
                "a new trainer.output_dir, or trainer.overwrite_output_dir=true to delete it and start over")
    previous = read_run_file(output_dir).get("fingerprint")
    if previous is not None and previous != current and not t.allow_changed_settings:
        diff = changed_keys(previous, current)
        raise RunFolderError(
            f"{output_dir} was started with other settings; resuming would mix two runs. Changed:\n  "
            + "\n  ".join(diff) + "\nUse the original settings, a new trainer.output_dir, or "
            "trainer.allow_changed_settings=true to resume anyway")


def claim_run_folder(output_dir: Path, recipe, current: dict[str, Any]) -> dict[str, Any]:
    """Main process: remove a previous run when overwriting, then (re)write run.json; returns its content."""
    output_dir.mkdir(parents=True, exist_ok=True)
    if recipe.trainer.overwrite_output_dir and recipe.trainer.resume == "none":
        for name in RUN_ARTIFACTS:
            path = output_dir / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    record = read_run_file(output_dir)
    record["fingerprint"] = current
    write_text_atomic(output_dir / RUN_FILE, json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
    return record


def update_run_file(output_dir: Path, **fields: Any) -> None:
    """Add fields (e.g. wandb_id) to run.json."""
    record = read_run_file(output_dir)
    record.update(fields)
    write_text_atomic(output_dir / RUN_FILE, json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")


def reconcile_metrics(path: Path, resumed_step: int) -> int:
    """Keep the rows of steps <= resumed_step (and only whole JSON lines); returns how many rows were dropped."""
    if not path.is_file():
        return 0
    kept, dropped = [], 0
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
            ok = isinstance(rec, dict) and int(rec.get("step", 0)) <= resumed_step
        except (json.JSONDecodeError, TypeError, ValueError):
            ok = False
        if ok:
            kept.append(line)
        else:
            dropped += 1
    if dropped:
        write_text_atomic(path, "".join(line + "\n" for line in kept))
    return dropped
