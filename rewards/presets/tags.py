"""The answer-block readers and think/answer format checks the reference implementations use.

They differ in small ways that change scores: which block (first or last), whether `.` spans
newlines, whether the completion is stripped first. Each function says whose behaviour it is.
"""

from __future__ import annotations

import re

# <think>...</think> then <answer>...</answer>, nothing else (R1-V / Video-R1 / Time-R1 format reward).
_THINK_ANSWER = re.compile(r"<think>.*?</think>\s*<answer>.*?</answer>", re.DOTALL)
_ANSWER_DOTALL = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_ANSWER_ONE_LINE = re.compile(r"<answer>(.*?)</answer>")  # `.` stops at a newline
_ANSWER_TRIMMED = re.compile(r"<answer>\s*(.*?)\s*</answer>", re.DOTALL)


def think_answer_format(text: str, strip: bool = False) -> float:
    """1.0 when the whole text is a think block, optional whitespace, an answer block; Time-R1
    strips the completion first (`strip=True`), R1-V and Video-R1 do not."""
    return 1.0 if _THINK_ANSWER.fullmatch(text.strip() if strip else text) else 0.0


def first_answer(text: str) -> str | None:
    """Content of the first answer block, `.` spanning newlines (Temporal-R1 `tvg.py`); None if none."""
    m = _ANSWER_DOTALL.search(text)
    return m.group(1) if m else None


def first_answer_one_line(text: str) -> str | None:
    """Content of the first answer block that opens and closes on one line (R1-V `r1v.py`)."""
    m = _ANSWER_ONE_LINE.search(text)
    return m.group(1) if m else None


def last_answer(text: str) -> str | None:
    """Content of the last answer block, `.` spanning newlines (Time-R1); None if none."""
    found = _ANSWER_DOTALL.findall(text)
    return found[-1] if found else None


def first_answer_trimmed(text: str) -> str:
    """Content of the first answer block without surrounding whitespace, "" if none (Video-R1)."""
    m = _ANSWER_TRIMMED.search(text)
    return m.group(1).strip() if m else ""
