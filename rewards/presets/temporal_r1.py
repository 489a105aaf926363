"""`preset: temporal_r1`: Temporal-R1's training rewards (appletea233/Temporal-R1, EasyR1/verl based).

- format, grounding samples: `verl/utils/reward_score/tvg.py` `tvg_format_reward`: the whole
  completion must be `<think>...</think>` then an answer block holding exactly
  `{"start_time": "<digits and dots>", "end_time": "<digits and dots>"}` (whitespace allowed
  around the tokens); anything else scores 0.
- format, other tasks: `r1v.py` `r1v_format_reward`: `<think>...</think>` then `<answer>...</answer>`.
- IoU: the IoU part of `tvg_compute_score` (`tvg_accuracy_reward`): the FIRST answer block is
  parsed as JSON, `start_time`/`end_time` converted with Python's float() and divided by the
  video length, compared with the ground truth as fractions of the video. No swapping or
  clipping: a reversed interval has no overlap (0); any failure (no block, bad JSON, missing key,
  zero duration, zero-width union) is 0.
- accuracy: `r1v.py` `r1v_accuracy_reward`: the first answer block on ONE line (its regex has no
  DOTALL; otherwise the whole completion), graded by mathruler's `grade_answer` against the
  stripped ground truth (normalised string match, else sympy equivalence).

rlvid samples hold several ground-truth intervals where the reference has one; the best one
counts (the same number for one interval).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence

from rewards.presets.tags import first_answer, first_answer_one_line, think_answer_format

_TVG_FORMAT = re.compile(
    r"<think>.*?</think>\s*<answer>\s*\{\s*\"start_time\"\s*:\s*\"[\d.]+\"\s*,"
    r"\s*\"end_time\"\s*:\s*\"[\d.]+\"\s*\}\s*</answer>",
    re.DOTALL,
)
_grader: Callable[[str, str], bool] | None = None


def format_score(text: str, task: str | None) -> float:
    """Temporal-R1's format reward: the grounding (JSON) form for temporal_grounding samples, the
    plain think/answer form for the others."""
    if task == "temporal_grounding":
        return 1.0 if _TVG_FORMAT.fullmatch(text) else 0.0
    return think_answer_format(text)


def overlap(pred: Sequence[float], gt: Sequence[float]) -> float:
    """Temporal-R1's `temporal_iou`: (min end - max start, floored at 0) over (max end - min start),
    floored at 0. Not symmetric under NaN, so the operand order is the reference's; raises
    ZeroDivisionError on a zero-width hull, as the reference does (its caller scores that 0)."""
    start_hi = max(pred[0], gt[0])
    start_lo = min(pred[0], gt[0])
    end_hi = max(pred[1], gt[1])
    end_lo = min(pred[1], gt[1])
    value = max(end_lo - start_hi, 0) / (end_hi - start_lo)
    return max(0, value)


def iou_score(text: str, gts: Sequence[Sequence[float]], duration: float | None) -> float:
    """The IoU half of Temporal-R1's grounding reward, ground truths in seconds (see the module doc)."""
    best = 0.0
    for gt in gts:
        try:
            block = first_answer(text)
            answer = json.loads(block.strip())  # type: ignore[union-attr]  # None -> AttributeError -> 0
            pred = [float(answer["start_time"]) / duration, float(answer["end_time"]) / duration]
            score = overlap(pred, [gt[0] / duration, gt[1] / duration])
        except Exception:  # the reference scores every failure 0
            score = 0.0
        best = score if score > best else best
    return float(best)


def _grade_answer() -> Callable[[str, str], bool]:
    global _grader
    if _grader is None:
        try:
            from mathruler.grader import grade_answer
        except ImportError as e:  # pragma: no cover - the project's setup installs it
            raise ImportError(
                "preset 'temporal_r1' of 'accuracy' grades with mathruler: pip install mathruler pylatexenc"
            ) from e
        _grader = grade_answer
    return _grader


def accuracy_score(text: str, answer: str) -> float:
    """R1-V's accuracy reward: 1.0 when mathruler's `grade_answer` accepts the answer, else 0.0."""
    grade = _grade_answer()
    try:
        block = first_answer_one_line(text)
        given = block.strip() if block is not None else text.strip()
        return 1.0 if grade(given, answer.strip()) else 0.0
    except Exception:  # the reference scores every failure 0
        return 0.0


def require_grader() -> None:
    """Fail at recipe load, not mid-training, when mathruler is missing."""
    _grade_answer()
