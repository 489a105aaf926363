"""`overlong`: DAPO's soft over-length penalty.

Truncated completions carry no answer, and punishing them with the task reward alone is noisy;
DAPO instead adds a length penalty that ramps linearly from 0 to -1 over the last
`cache_length` units before `max_length`, and is -1 beyond it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rewards.columns import check_choice, column

UNITS = ("tokens", "chars", "words")


def overlong_penalty(length: int, max_length: int, cache_length: int) -> float:
    """0 up to max_length - cache_length, then linearly down to -1 at max_length, -1 beyond."""
    soft_start = max_length - cache_length
    if length <= soft_start:
        return 0.0
    if length > max_length:
        return -1.0
    return (soft_start - length) / cache_length


def overlong_reward(
    completions: list[str],
    *,
    max_length: int,
    cache_length: int | None = None,
    unit: str = "tokens",
    completion_ids: Sequence[Sequence[int]] | None = None,
    completion_lengths: Sequence[int] | None = None,
    **kwargs: Any,
) -> list[float | None]:
    """A penalty in [-1, 0] for completions near or over `max_length`.

    Lengths are in tokens by default, read from the `completion_lengths` column or from
    `completion_ids` (as TRL passes them); unit="chars" or "words" measures the text instead.
    `cache_length` (the soft zone) defaults to max_length // 5 (DAPO: 4096 of 20480).
    """
    validate_options(max_length=max_length, cache_length=cache_length, unit=unit)
    cache = cache_length if cache_length is not None else max(1, max_length // 5)
    n = len(completions)
    if unit == "tokens":
        if completion_lengths is not None:
            lengths = [int(x) for x in column(completion_lengths, n, "completion_lengths")]
        elif completion_ids is not None:
            lengths = [len(x) for x in column(completion_ids, n, "completion_ids")]
        else:
            raise ValueError(
                "unit 'tokens' needs a 'completion_lengths' or 'completion_ids' column; "
                "pass unit='chars' or 'words' to measure the text instead"
            )
    elif unit == "chars":
        lengths = [len(c) for c in completions]
    else:
        lengths = [len(c.split()) for c in completions]
    return [overlong_penalty(x, max_length, cache) for x in lengths]


def validate_options(max_length: Any = None, cache_length: Any = None, unit: str = "tokens", **_: Any) -> None:
    """Fail at recipe load on a bad option value."""
    if not isinstance(max_length, int) or isinstance(max_length, bool) or max_length <= 0:
        raise ValueError(f"option 'max_length' must be a positive integer, got {max_length!r}")
    if cache_length is not None and (
        not isinstance(cache_length, int) or isinstance(cache_length, bool) or not 0 < cache_length <= max_length
    ):
        raise ValueError(f"option 'cache_length' must be an integer in [1, max_length], got {cache_length!r}")
    check_choice("unit", unit, UNITS)


overlong_reward.validate_options = validate_options  # type: ignore[attr-defined]
