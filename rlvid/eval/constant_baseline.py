"""The best constant answer to a grounding set: what a model that ignores the video can score at most.

A model that never looks at the pixels can still learn where intervals usually lie. The best single
interval, answered for every clip, bounds what that buys: a learning claim about reading the video
means beating it clearly (issue 17). Scored as the standard evaluation scores (rlvid/eval/conventions.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from rlvid.data.sample import Sample
from rlvid.eval.metrics import grounding_metrics


def best_constant_interval(samples: Sequence[Sample], step: float = 0.5) -> tuple[tuple[float, float], float]:
    """The interval on a `step`-second grid (inside the longest clip) with the highest mIoU over `samples`, and it.

    Exhaustive over the grid: O(grid^2 * len(samples)), fine for a few hundred clips of tens of seconds.
    """
    grounding = [s for s in samples if s.task == "temporal_grounding" and s.intervals]
    if not grounding:
        raise ValueError("best_constant_interval: no temporal-grounding samples with intervals")
    if step <= 0:
        raise ValueError(f"step must be > 0, got {step}")
    longest = max(s.duration or max(b for _, b in s.intervals) for s in grounding)
    grid = [round(i * step, 6) for i in range(int(longest / step) + 1)]
    truths = [s.intervals for s in grounding]
    durations = [s.duration for s in grounding]
    best: tuple[tuple[float, float], float] = ((0.0, 0.0), -1.0)
    for i, start in enumerate(grid):
        for end in grid[i + 1:]:
            miou = grounding_metrics([(start, end)] * len(grounding), truths, durations)["mIoU"]
            if miou > best[1]:
                best = ((start, end), miou)
    return best


def constant_miou(interval: tuple[float, float], samples: Sequence[Sample]) -> float:
    """mIoU of answering `interval` on every temporal-grounding sample (e.g. a constant fitted on train, held out)."""
    grounding = [s for s in samples if s.task == "temporal_grounding" and s.intervals]
    if not grounding:
        raise ValueError("constant_miou: no temporal-grounding samples with intervals")
    return grounding_metrics([tuple(interval)] * len(grounding), [s.intervals for s in grounding],
                             [s.duration for s in grounding])["mIoU"]
