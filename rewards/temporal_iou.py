"""`temporal_iou`: how well the predicted interval overlaps the ground truth.

The continuous half of Temporal-R1's dual reward. One interval is read from the answer (see
`parsing.parse_intervals` for the forms); an unparseable answer scores 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rewards.columns import check_choice, check_task, column
from rewards.iou import Interval, boundary_factor, fix_interval, interval_iou
from rewards.parsing import as_intervals, interval_text, parse_interval
from rewards.presets import IOU_PRESETS, check_preset, temporal_r1, time_r1

VARIANTS = ("iou", "time_r1")
ON_REVERSED = ("swap", "zero")
INTERVAL_TASKS = ("temporal_grounding", "grounded_qa")


def score_interval(
    pred: Sequence[float] | None,
    gts: Sequence[Sequence[float]],
    duration: float | None = None,
    *,
    variant: str = "iou",
    on_reversed: str = "swap",
    clip: bool = True,
) -> float:
    """Score one predicted interval against the ground-truth interval(s) (the best match counts).

    variant="iou": plain IoU. variant="time_r1": IoU x (1 - |dstart|/duration) x (1 - |dend|/duration)
    as in Time-R1, which keeps rewarding closer boundaries once the overlap is already good.
    A reversed prediction is swapped or scores 0 (`on_reversed`); `clip` clips it to [0, duration].
    """
    if pred is None or not gts:
        return 0.0
    fixed = fix_interval(pred, duration, on_reversed, clip)
    if fixed is None:
        return 0.0
    if variant == "time_r1":
        if duration is None or duration <= 0:
            raise ValueError("variant 'time_r1' needs a positive 'duration' column")
        return max(interval_iou(fixed, gt) * boundary_factor(fixed, gt, duration) for gt in gts)
    return max(interval_iou(fixed, gt) for gt in gts)


def predicted_interval(completion: str, duration: float | None = None, fractions: bool = False) -> Interval | None:
    """The interval a completion predicts (first one written in its answer), or None."""
    return parse_interval(interval_text(completion), duration, fractions)


def temporal_iou_reward(
    completions: list[str],
    *,
    intervals: Sequence[Any] | None = None,
    duration: Sequence[float | None] | None = None,
    task: Sequence[str | None] | None = None,
    variant: str = "iou",
    on_reversed: str = "swap",
    clip: bool = True,
    fractions: bool = False,
    preset: str | None = None,
    **kwargs: Any,
) -> list[float | None]:
    """Temporal IoU in [0, 1] of the predicted interval with the ground-truth `intervals`.

    None for samples without ground-truth intervals or whose task has none (mcq, open_qa,
    numeric, dense_caption). `fractions=True` reads plain numbers as fractions of the duration
    (for prompts that ask for relative positions); percentages always are.
    `preset` reproduces a paper's IoU reward exactly instead (the other options are then ignored):
    temporal_r1 (Temporal-R1's tvg.py) or time_r1 (Time-R1's iou_timestamp_reward_v2, which can
    be negative); see rewards/presets.
    """
    validate_options(variant=variant, on_reversed=on_reversed, clip=clip, fractions=fractions, preset=preset)
    n = len(completions)
    gts_col = column(intervals, n, "intervals")
    dur_col, task_col = column(duration, n, "duration"), column(task, n, "task")
    out: list[float | None] = []
    for c, gt, d, t in zip(completions, gts_col, dur_col, task_col, strict=True):
        check_task(t)
        if not gt or (t is not None and t not in INTERVAL_TASKS):
            out.append(None)
            continue
        d = float(d) if d is not None else None
        if preset is not None:
            out.append(_preset_score(preset, c, as_intervals(gt), d))
            continue
        pred = predicted_interval(c, d, fractions)
        out.append(score_interval(pred, as_intervals(gt), d, variant=variant, on_reversed=on_reversed, clip=clip))
    return out


def _preset_score(preset: str, completion: str, gts: list[Interval], duration: float | None) -> float:
    if preset == "temporal_r1":
        return temporal_r1.iou_score(completion, gts, duration)
    if duration is None or duration <= 0:
        raise ValueError("preset 'time_r1' needs a positive 'duration' column")
    return time_r1.iou_score(completion, gts, duration)


def validate_options(
    variant: str = "iou",
    on_reversed: str = "swap",
    clip: bool = True,
    fractions: bool = False,
    preset: str | None = None,
    **_: Any,
) -> None:
    """Fail at recipe load on a bad option value."""
    check_preset(preset, IOU_PRESETS)
    check_choice("variant", variant, VARIANTS)
    check_choice("on_reversed", on_reversed, ON_REVERSED)
    check_choice("clip", clip, (True, False))
    check_choice("fractions", fractions, (True, False))


temporal_iou_reward.validate_options = validate_options  # type: ignore[attr-defined]
