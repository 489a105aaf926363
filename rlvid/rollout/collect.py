"""The resumable sample-and-score loop that `rlvid select` and `rlvid mdpo-pairs` share.

Both sample k completions for each prompt of a list, score them, and keep each finished batch on
disk, so a killed run continues where it stopped (data_selection.collect: per-sample reward stats;
rlvid.trainers.mdpo.build: metric-ranked pairs). What they share lives here:

- sharding: process r of W takes prompts r, r+W, r+2W, ... and cuts its share into fixed batches;
  a prompt's k completions are generated and scored on one process;
- resuming: the caller names the prompts its files already hold; a batch samples only the others,
  and every file write is one appended, flushed (fsync) block of lines, a torn last line being cut
  on restart (`drop_torn_tail`);
- seeding: each batch's seed is a function of the run seed and the batch's prompt ids only, so a
  resumed run samples what an uninterrupted one would (same seed, batch size and processes);
- settings: the folder records the settings that make results comparable; resuming with others is
  a `ResumeMismatchError` naming what changed (`check_settings`).
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from accelerate.utils import set_seed

from rlvid.data.atomic import write_text_atomic
from rlvid.redact import scrub, scrub_text
from rlvid.rollout.base import RolloutEngine, Rollouts, SamplingParams


class ProcessState(Protocol):
    """What the loop needs of accelerate's `PartialState` / `Accelerator`."""

    process_index: int
    num_processes: int
    is_main_process: bool

    def wait_for_everyone(self) -> None: ...


class ResumeMismatchError(ValueError):
    """An output folder holds results made with other settings than this run's."""


def check_settings(folder: str | Path, settings: dict[str, Any], state: ProcessState, filename: str) -> None:
    """Compare `settings` with folder/filename (written by the main process on the first run); all processes call it."""
    settings = scrub(json.loads(json.dumps(settings)))  # the JSON form, as it is stored
    path = Path(folder) / filename
    if path.is_file():
        before = json.loads(path.read_text())
        diff = sorted(k for k in set(before) | set(settings) if before.get(k) != settings.get(k))
        if diff:
            changes = ", ".join(f"{k}: {before.get(k)!r} -> {settings.get(k)!r}" for k in diff)
            raise ResumeMismatchError(f"{folder} holds results made with other settings ({changes}); "
                                      "use the same settings to resume, or another folder")
    state.wait_for_everyone()
    if state.is_main_process and not path.is_file():
        write_text_atomic(path, json.dumps(settings, indent=2, sort_keys=True) + "\n")
    state.wait_for_everyone()


def batch_seed(seed: int, ids: Sequence[str]) -> int:
    """A batch's sampling seed: a function of the run seed and the batch's prompt ids only."""
    return zlib.crc32("\n".join([str(seed), *ids]).encode())


def my_share(prompts: Sequence, state: ProcessState) -> list:
    """This process's prompts (r, r+W, ...), in order."""
    return list(prompts)[state.process_index::state.num_processes]


def pending(prompts: Sequence, done: set[str], state: ProcessState) -> list:
    """This process's prompts that its files do not hold yet."""
    return [p for p in my_share(prompts, state) if p.id not in done]


def check_sizes(k: int, batch_size: int) -> None:
    if k < 1 or batch_size < 1:
        raise ValueError(f"k and batch_size must be >= 1, got k={k}, batch_size={batch_size}")


def sample_batches(prompts: Sequence, engine: RolloutEngine, sampling: SamplingParams, *, k: int, batch_size: int,
                   seed: int, state: ProcessState, done: set[str],
                   finish: Callable[[int, list, Rollouts], None]) -> None:
    """For each batch of this process's share: sample k completions of its unfinished prompts and call
    `finish(batch_index, prompts, rollouts)`, which scores and writes them (the resume unit)."""
    check_sizes(k, batch_size)
    mine = my_share(prompts, state)
    for b in range(0, len(mine), batch_size):
        todo = [p for p in mine[b:b + batch_size] if p.id not in done]
        if not todo:
            continue
        set_seed(batch_seed(seed, [p.id for p in todo]))
        finish(b // batch_size, todo, engine.generate(todo, k, sampling))


def drop_torn_tail(path: Path) -> None:
    """Cut a file back to its last complete line (a kill mid-write), so appended lines start on their own."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(path, "r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)


def append_lines(path: Path, lines: Sequence[str]) -> None:
    """Append lines as one block, flushed to disk before returning."""
    if not lines:
        return
    with open(path, "a", encoding="utf-8") as f:
        f.write("".join(scrub_text(line) + "\n" for line in lines))
        f.flush()
        os.fsync(f.fileno())
