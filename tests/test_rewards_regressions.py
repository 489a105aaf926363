"""Regression tests for the four scoring bugs of issue 13 (one block each)."""

from __future__ import annotations

import pytest

from rewards.accuracy import accuracy_reward, score_answer
from rewards.parsing import parse_interval, parse_number, parse_option, unbox
from rewards.temporal_iou import temporal_iou_reward

OPTIONS = ["a dog", "a cat", "a bird", "a fish"]


# 1. Minus signs were dropped: "-3 to 5" gave (3, 5).
@pytest.mark.parametrize(
    "text, expected",
    [
        ("-3 to 5", (-3.0, 5.0)),
        ("from -2.5s to 4s", (-2.5, 4.0)),
        ("3 - -5", (3.0, -5.0)),
        ("3-5", (3.0, 5.0)),  # a dash between numbers stays a separator
        ("start: -3, end: 7", (-3.0, 7.0)),
        ("-1:02 to 0:05", (-62.0, 5.0)),
        ("1e1 to 20", (10.0, 20.0)),  # exponents were cut at the "e"
    ],
)
def test_signed_and_exponent_intervals(text, expected):
    assert parse_interval(text) == expected


def test_negative_prediction_is_scored_as_written_then_clipped():
    # (-3, 5) clipped to (0, 5) against (0, 5): IoU 1; as (3, 5) it was 0.4.
    assert temporal_iou_reward(["<answer>-3 to 5</answer>"], intervals=[[[0, 5]]], duration=[10.0]) == [1.0]
    assert temporal_iou_reward(["<answer>-3 to 5</answer>"], intervals=[[[0, 5]]], duration=[10.0],
                               clip=False) == [pytest.approx(5 / 8)]


# 2. A ground truth like "4,144" raised ValueError in numeric accuracy.
@pytest.mark.parametrize(
    "answer, gt, expected",
    [("4144", "4,144", 1.0), ("4,144", "4,144", 1.0), ("4143", "4,144", 0.0), ("12", "n/a", 0.0), ("1e1", "10", 1.0)],
)
def test_numeric_ground_truth_with_commas(answer, gt, expected):
    assert score_answer(f"<answer>{answer}</answer>", "numeric", gt) == expected


def test_numeric_reward_with_raise_does_not_stop_on_odd_ground_truth():
    out = accuracy_reward(["<answer>5</answer>"] * 2, task=["numeric"] * 2, answer=["4,144", "n/a"])
    assert out == [0.0, 0.0]


# 3. \boxed{B} scored 0 on multiple choice.
@pytest.mark.parametrize("text", [r"\boxed{B}", r"The answer is \boxed{B}.", r"$\boxed{(B)}$", r"\boxed{\text{B}}"])
def test_boxed_option(text):
    assert parse_option(text, OPTIONS) == "B"
    assert score_answer(f"<answer>{text}</answer>", "mcq", "B", OPTIONS) == 1.0


def test_unbox_balances_braces():
    assert unbox(r"x \boxed{\frac{1}{2}} y") == r"\frac{1}{2}"
    assert unbox(r"\boxed{open") == r"\boxed{open"  # unterminated: unchanged
    assert parse_number(r"\boxed{42}") == 42.0


# 4. Hedged answers got credit: a completion naming more than one option scores 0.
@pytest.mark.parametrize(
    "text",
    ["C, B", "A, B, C, D", "B or C", "(B) and (C)", "the answer is B or C", "B/C", "B) or C)"],
)
def test_hedged_answers_score_zero(text):
    assert parse_option(text, OPTIONS) is None
    for gt in "ABCD":
        assert score_answer(f"<answer>{text}</answer>", "mcq", gt, OPTIONS) == 0.0


@pytest.mark.parametrize(
    "text, expected",
    [("A man walks", None), ("I pick (B)", "B"), ("B. A dog barks", "B"), ("(C)", "C"), ("B, a cat", "B")],
)
def test_articles_are_not_hedges(text, expected):
    assert parse_option(text, OPTIONS) == expected
