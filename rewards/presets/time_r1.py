"""`preset: time_r1`: Time-R1's training rewards (xiaomi-research/time-r1, `main.py`).

- IoU: `iou_timestamp_reward_v2`: the LAST answer block; in it the LAST `A to B` / `A and B`
  (exactly one space each side, numbers written as digits with at most one dot, no sign, no
  colon, case-insensitive) gives (start, end) in seconds. No answer block or no such pair: 0.
  reward = IoU x (1 - |gt_start - start| / duration) x (1 - |gt_end - end| / duration), where IoU
  uses max(0, overlap) / hull and a reversed prediction has overlap 0. Nothing is clipped or
  floored, so a prediction past the end of the video can score BELOW 0 (IoU > 0 with a factor
  < 0), e.g. `0 to 300` for [0, 50] in a 100 s video scores (50/300) x 1 x (1 - 2.5) = -0.25.
  One place rlvid cannot follow: when prediction and ground truth are the same zero-length
  point the reference reuses the previous completion's IoU (or raises NameError on the first);
  rlvid scores 0. And where the reference's arithmetic gives NaN (a number too long for a
  float, read as inf, makes 0 x -inf), rlvid scores 0: a reward must be a finite number.
- format: `format_reward`: the stripped completion is `<think>...</think>` `<answer>...</answer>`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from rewards.presets.tags import last_answer, think_answer_format

_PAIR = re.compile(r"(\d+\.?\d*) (to|and) (\d+\.?\d*)", re.IGNORECASE)


def format_score(text: str) -> float:
    """Time-R1's format reward (the completion is stripped first)."""
    return think_answer_format(text, strip=True)


def predicted_pair(text: str) -> tuple[float, float] | None:
    """(start, end) of the last `A to B` / `A and B` in the last answer block, or None."""
    block = last_answer(text)
    if block is None:
        return None
    pairs = _PAIR.findall(block)
    if not pairs:
        return None
    start, _, end = pairs[-1]
    return float(start), float(end)


def iou_score(text: str, gts: Sequence[Sequence[float]], duration: float) -> float:
    """Time-R1's `iou_timestamp_reward_v2` for one completion (best ground truth; see the module doc)."""
    pred = predicted_pair(text)
    if pred is None or not gts:
        return 0.0
    start, end = pred
    best = None
    for gt in gts:
        s, e = gt[0], gt[1]
        inter = max(0, min(end, e) - max(start, s))
        hull = max(end, e) - min(start, s)
        iou = inter / hull if hull > 0 else 0.0
        score = iou * (1 - abs(s / duration - start / duration)) * (1 - abs(e / duration - end / duration))
        if not math.isfinite(score):
            score = 0.0
        best = score if best is None or score > best else best
    return float(best)
