"""How a grounding prediction is turned into one IoU: the conventions evaluators disagree on.

- `standard` (the default): Moment-DETR's `standalone_eval/eval.py` `compute_mr_r1` (the
  convention of QVHighlights, Charades-STA and ActivityNet evaluators): the prediction is taken as
  written (no swapping, no clipping); of several ground-truth windows, the one with the highest
  IoU with the prediction is chosen (first on ties), and the IoU with it counts. A reversed
  prediction has no overlap (0); an unparseable one is 0.
- `training`: what the `temporal_iou` reward does in training: a reversed prediction is swapped,
  the interval clipped to [0, duration], the best ground truth counts.
- `temporal_r1`: Temporal-R1's evaluation pipeline (its lmms-eval model wrapper `qwen2_5_vl_r1.py`
  `extract_timestamps`, then `eval_tvg.py`): only a completion matching its think + JSON answer
  form anywhere is read (else "0.0-0.0"); the numbers are written back as "start-end" and re-read
  by `extract_time`, which swaps a reversed pair; a completion it cannot read at all is scored as
  [gt_end + 10, gt_end + 20] (IoU 0). One ground-truth window (the first).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from rewards.parsing import Interval
from rewards.temporal_iou import predicted_interval, score_interval

CONVENTIONS = ("standard", "training", "temporal_r1")

_TR1_ANSWER = re.compile(
    r"<think>.*?</think>\s*<answer>\s*\{\s*\"start_time\"\s*:\s*\"([\d.]+)\"\s*,"
    r"\s*\"end_time\"\s*:\s*\"([\d.]+)\"\s*\}\s*</answer>",
    re.DOTALL,
)
_TR1_PAIR = re.compile(r"(\d+\.*\d*)\s*-\s*(\d+\.*\d*)")


def check_convention(convention: str) -> None:
    """Raise a ValueError naming the allowed conventions."""
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown grounding convention {convention!r}; allowed: {list(CONVENTIONS)}")


# ---------------------------------------------------------------- standard (Moment-DETR)


def _divide(a: float, b: float) -> float:
    """a / b with numpy's float semantics (0/0 = nan, x/0 = +-inf), as Moment-DETR divides."""
    if b != 0:
        return a / b
    if a == 0 or a != a:
        return math.nan
    return math.copysign(math.inf, a) * math.copysign(1.0, b)


def _selection_iou(pred: Sequence[float], gt: Sequence[float]) -> float:
    """The IoU Moment-DETR picks the ground-truth window by (`compute_temporal_iou_batch_cross`:
    union = both lengths minus the overlap, negative for a reversed interval)."""
    inter = min(pred[1], gt[1]) - max(pred[0], gt[0])
    inter = inter if inter > 0 else 0.0
    return _divide(inter, (pred[1] - pred[0]) + (gt[1] - gt[0]) - inter)


def _argmax(values: list[float]) -> int:
    """numpy's argmax: the first maximum, a NaN counting as the maximum."""
    best = 0
    for i, v in enumerate(values):
        if v != v:
            return i
        if v > values[best]:
            best = i
    return best


def standard_iou(pred: Sequence[float] | None, gts: Sequence[Sequence[float]]) -> float:
    """Moment-DETR's R1 IoU of one numeric prediction (None or non-finite: 0)."""
    if pred is None or not gts or not all(math.isfinite(v) for v in pred):
        return 0.0
    gt = gts[_argmax([_selection_iou(pred, g) for g in gts])]
    inter = min(pred[1], gt[1]) - max(pred[0], gt[0])
    inter = inter if inter > 0 else 0.0
    hull = max(pred[1], gt[1]) - min(pred[0], gt[0])  # `compute_temporal_iou_batch_paired`
    return inter / hull if hull != 0 else 0.0


# ---------------------------------------------------------------- temporal_r1 (its eval pipeline)


def temporal_r1_interval(completion: str) -> Interval | None:
    """The (start, end) Temporal-R1's evaluation reads from a completion, or None when it reads none."""
    m = _TR1_ANSWER.search(completion)
    written = "0.0-0.0"
    if m:
        try:
            written = f"{float(m.group(1))}-{float(m.group(2))}"
        except ValueError:  # "1.2.3"
            written = "0.0-0.0"
    pairs = _TR1_PAIR.findall(written)
    if not pairs:
        return None
    start, end = float(pairs[0][0]), float(pairs[0][1])
    return (start, end) if end > start else (end, start)


def temporal_r1_iou(pred: Sequence[float] | None, gts: Sequence[Sequence[float]]) -> float:
    """`eval_tvg.py`'s IoU of a prediction with the first ground-truth window (None: the
    fallback [gt_end + 10, gt_end + 20])."""
    if not gts:
        return 0.0
    gt = gts[0]
    if pred is None:
        pred = (gt[1] + 10, gt[1] + 20)
    elif pred[0] > pred[1]:
        pred = (pred[1], pred[0])
    hull = max(gt[1], pred[1]) - min(gt[0], pred[0])
    if hull == 0:  # the reference divides by zero here
        return 0.0
    return max(min(gt[1], pred[1]) - max(gt[0], pred[0]), 0) / hull


# ---------------------------------------------------------------- one entry point


def prediction_iou(
    pred: str | Sequence[float] | None,
    gts: Sequence[Sequence[float]],
    duration: float | None = None,
    convention: str = "standard",
    fractions: bool = False,
) -> float:
    """The IoU of one prediction (a completion, a (start, end) pair, or None) under `convention`."""
    if convention == "temporal_r1":
        return temporal_r1_iou(temporal_r1_interval(pred) if isinstance(pred, str) else pred, gts)
    interval = predicted_interval(pred, duration, fractions) if isinstance(pred, str) else pred
    if convention == "training":
        return score_interval(interval, gts, duration)
    return standard_iou(interval, gts)
