"""`grounded_qa`: the answer is right AND the evidence interval(s) overlap the ground truth.

Temporal-R1's dual reward for grounded QA in one function: a discrete answer score plus a
continuous overlap score, each with its own weight, returned as two named sub-scores (the
combined reward is their sum) so both show up separately in the logs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rewards.accuracy import score_answer
from rewards.accuracy import validate_options as validate_accuracy_options
from rewards.columns import check_choice, check_task, column
from rewards.iou import fix_interval, union_iop, union_iou
from rewards.parsing import as_intervals, interval_text, parse_intervals

OVERLAPS = ("iou", "iop")


def predicted_intervals(
    completion: str,
    duration: float | None = None,
    *,
    on_reversed: str = "swap",
    clip: bool = True,
    fractions: bool = False,
) -> list[tuple[float, float]]:
    """All intervals a completion predicts, cleaned (reversed ones swapped or dropped, clipped)."""
    out = []
    for iv in parse_intervals(interval_text(completion), duration, fractions):
        fixed = fix_interval(iv, duration, on_reversed, clip)
        if fixed is not None:
            out.append(fixed)
    return out


def grounded_qa_reward(
    completions: list[str],
    *,
    task: Sequence[str | None] | None = None,
    answer: Sequence[str | None] | None = None,
    options: Sequence[Sequence[str] | None] | None = None,
    intervals: Sequence[Any] | None = None,
    duration: Sequence[float | None] | None = None,
    answer_weight: float = 1.0,
    iou_weight: float = 1.0,
    overlap: str = "iou",
    on_reversed: str = "swap",
    clip: bool = True,
    fractions: bool = False,
    numeric: str = "tolerance",
    rel_tol: float = 0.0,
    open_metric: str = "rouge_l",
    **kwargs: Any,
) -> dict[str, list[float | None]]:
    """Sub-scores {"answer": answer_weight x accuracy, <overlap>: iou_weight x overlap}.

    The answer part is scored as by `accuracy` (option letter when the sample has options, else
    free text), with the written intervals removed from the answer first. The overlap is the IoU
    (overlap="iou") or the intersection over the prediction (overlap="iop") of the union of every
    predicted interval with the union of the ground-truth intervals; no interval scores 0.
    None for samples that are not grounded QA (without a task column: samples lacking an answer
    or intervals).
    """
    validate_options(
        answer_weight=answer_weight, iou_weight=iou_weight, overlap=overlap, on_reversed=on_reversed,
        numeric=numeric, rel_tol=rel_tol, open_metric=open_metric,
    )
    n = len(completions)
    tasks, answers = column(task, n, "task"), column(answer, n, "answer")
    opts, gts, durs = column(options, n, "options"), column(intervals, n, "intervals"), column(duration, n, "duration")
    overlap_fn = union_iou if overlap == "iou" else union_iop
    ans_out: list[float | None] = []
    iou_out: list[float | None] = []
    for c, t, a, o, gt, d in zip(completions, tasks, answers, opts, gts, durs, strict=True):
        check_task(t)
        if (t is not None and t != "grounded_qa") or a is None or not gt:
            ans_out.append(None)
            iou_out.append(None)
            continue
        d = float(d) if d is not None else None
        acc = score_answer(c, "grounded_qa", a, o, numeric=numeric, rel_tol=rel_tol, open_metric=open_metric)
        preds = predicted_intervals(c, d, on_reversed=on_reversed, clip=clip, fractions=fractions)
        ov = overlap_fn(preds, as_intervals(gt)) if preds else 0.0
        ans_out.append(answer_weight * (acc or 0.0))
        iou_out.append(iou_weight * ov)
    return {"answer": ans_out, overlap: iou_out}


def validate_options(
    answer_weight: float = 1.0,
    iou_weight: float = 1.0,
    overlap: str = "iou",
    on_reversed: str = "swap",
    **kw: Any,
) -> None:
    """Fail at recipe load on a bad option value."""
    for name, w in (("answer_weight", answer_weight), ("iou_weight", iou_weight)):
        if not isinstance(w, (int, float)) or w != w or abs(w) == float("inf"):
            raise ValueError(f"option '{name}' must be a finite number, got {w!r}")
    check_choice("overlap", overlap, OVERLAPS)
    check_choice("on_reversed", on_reversed, ("swap", "zero"))
    validate_accuracy_options(**kw)


grounded_qa_reward.validate_options = validate_options  # type: ignore[attr-defined]
