"""Reading reward columns: lists aligned with the completions, any of which may be absent."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rlvid.data.sample import TASKS


def column(values: Sequence[Any] | None, n: int, name: str) -> Sequence[Any]:
    """The column as a sequence of length `n` (all None when the column was not passed)."""
    if values is None:
        return [None] * n
    if len(values) != n:
        raise ValueError(f"column '{name}' has {len(values)} items for {n} completions")
    return values


def check_choice(option: str, value: Any, allowed: Sequence[Any]) -> None:
    """Raise a ValueError naming the option and its allowed values when `value` is not one."""
    if value not in allowed:
        raise ValueError(f"option '{option}' is {value!r}; allowed: {list(allowed)}")


def check_task(task: Any) -> None:
    """Raise on a task name the sample schema does not know (a typo would otherwise make a
    task-aware reward silently return None)."""
    if task is not None and task not in TASKS:
        raise ValueError(f"unknown task {task!r}; allowed: {list(TASKS)}")
