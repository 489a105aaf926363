"""Temporal overlap of intervals: IoU, IoP, merging, and the clean-up of predicted intervals.

Pure functions on (start, end) pairs in seconds; shared by the rewards and the evaluation
metrics so training and evaluation measure overlap the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

Interval = tuple[float, float]


def interval_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two intervals, in [0, 1]; 1 iff they are equal, 0 iff their
    overlap has zero length. Two equal zero-length intervals count as equal (IoU 1)."""
    a0, a1 = a[0], a[1]
    b0, b1 = b[0], b[1]
    inter = (a1 if a1 < b1 else b1) - (a0 if a0 > b0 else b0)
    if inter <= 0.0:
        return 1.0 if (a0 == b0 and a1 == b1) else 0.0
    union = (a1 if a1 > b1 else b1) - (a0 if a0 < b0 else b0)
    return inter / union


def interval_iop(pred: Sequence[float], gt: Sequence[float]) -> float:
    """Intersection over the prediction's length (NExT-GQA's IoP); 0 for an empty prediction."""
    length = pred[1] - pred[0]
    if length <= 0.0:
        return 0.0
    inter = min(pred[1], gt[1]) - max(pred[0], gt[0])
    return inter / length if inter > 0.0 else 0.0


def merge_intervals(intervals: Iterable[Sequence[float]]) -> list[Interval]:
    """Sorted union of intervals: overlapping or touching ones are merged."""
    out: list[list[float]] = []
    for s, e in sorted((float(iv[0]), float(iv[1])) for iv in intervals):
        if out and s <= out[-1][1]:
            if e > out[-1][1]:
                out[-1][1] = e
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]


def _length(merged: Sequence[Interval]) -> float:
    return sum(e - s for s, e in merged)


def _intersection(a: Sequence[Interval], b: Sequence[Interval]) -> float:
    """Total overlap of two merged (sorted, disjoint) interval lists, by a linear sweep."""
    i = j = 0
    total = 0.0
    while i < len(a) and j < len(b):
        lo = max(a[i][0], b[j][0])
        hi = min(a[i][1], b[j][1])
        if hi > lo:
            total += hi - lo
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return total


def union_iou(pred: Iterable[Sequence[float]], gt: Iterable[Sequence[float]]) -> float:
    """IoU of two sets of intervals, each taken as the union of its members."""
    p, g = merge_intervals(pred), merge_intervals(gt)
    inter = _intersection(p, g)
    union = _length(p) + _length(g) - inter
    if union <= 0.0:
        return 1.0 if p and p == g else 0.0
    return inter / union


def union_iop(pred: Iterable[Sequence[float]], gt: Iterable[Sequence[float]]) -> float:
    """Overlap of the predicted set with the ground-truth set over the predicted set's length."""
    p, g = merge_intervals(pred), merge_intervals(gt)
    length = _length(p)
    return _intersection(p, g) / length if length > 0.0 else 0.0


def fix_interval(
    iv: Sequence[float], duration: float | None = None, on_reversed: str = "swap", clip: bool = True
) -> Interval | None:
    """Clean a predicted interval before scoring it.

    A reversed interval (start > end) is swapped (`on_reversed="swap"`) or rejected ("zero", the
    caller scores it 0). With `clip`, values are clipped to [0, duration] (to [0, inf) without a
    duration). Returns None for a rejected interval.
    """
    s, e = float(iv[0]), float(iv[1])
    if s > e:
        if on_reversed == "zero":
            return None
        s, e = e, s
    if clip:
        s = max(0.0, s)
        e = max(0.0, e)
        if duration is not None:
            s = min(s, duration)
            e = min(e, duration)
    return (s, e)


def boundary_factor(pred: Sequence[float], gt: Sequence[float], duration: float) -> float:
    """Time-R1's boundary term (1 - |dstart|/duration) * (1 - |dend|/duration), each factor
    floored at 0."""
    fs = 1.0 - abs(pred[0] - gt[0]) / duration
    fe = 1.0 - abs(pred[1] - gt[1]) / duration
    return max(0.0, fs) * max(0.0, fe)
