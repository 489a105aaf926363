"""Table-driven tests: every answer form the parsers must understand (and some they must not)."""

from __future__ import annotations

import pytest

from rewards.events import as_events, parse_events
from rewards.parsing import (
    as_intervals,
    extract_answer,
    interval_text,
    normalize_text,
    parse_interval,
    parse_intervals,
    parse_number,
    parse_option,
    parse_time,
    strip_intervals,
)
from rlvid.data.sample import Event


@pytest.mark.parametrize(
    "text, expected",
    [
        ("<think>x</think><answer> B </answer>", "B"),
        ("<answer>A</answer> more <answer>C</answer>", "C"),  # last block wins
        ("<think>hmm</think> final: 12 to 15", "final: 12 to 15"),  # after </think>
        ("<think>x</think><answer>12 to 15", "12 to 15"),  # unterminated answer runs to the end
        ("  just text  ", "just text"),
        ("", ""),
    ],
)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


def test_interval_text_prefers_time_tag():
    assert interval_text("<answer>B</answer><time>3 - 4</time>") == "3 - 4"
    assert interval_text("<answer>B, 3 - 4</answer>") == "B, 3 - 4"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("12.5 to 20", (12.5, 20.0)),
        ("12.5 - 20.0 seconds", (12.5, 20.0)),
        ("[12.5, 20]", (12.5, 20.0)),
        ("(12.5, 20.0)", (12.5, 20.0)),
        ("00:12.5-00:20", (12.5, 20.0)),
        ("01:02 - 01:10", (62.0, 70.0)),
        ("1:02:03 to 1:02:10.5", (3723.0, 3730.5)),
        ("from 12.5s to 20s", (12.5, 20.0)),
        ("12.5 seconds to 20 seconds", (12.5, 20.0)),
        ("between 12.5 and 20 seconds", (12.5, 20.0)),
        ("12.5\u201320", (12.5, 20.0)),
        ("12.5 ~ 20", (12.5, 20.0)),
        ('{"start_time": "12.5", "end_time": "20"}', (12.5, 20.0)),
        ('{"start_time": 12.5, "end_time": 20}', (12.5, 20.0)),
        ("start: 3, end: 7", (3.0, 7.0)),
        ("The event starts at 12.5 seconds and finishes at 20 seconds.", (12.5, 20.0)),
        ("20 to 12.5", (20.0, 12.5)),  # reversed is returned as written; rewards decide
        ("no idea", None),
        ("around 12 seconds", None),
        ("", None),
    ],
)
def test_parse_interval_forms(text, expected):
    assert parse_interval(text) == expected


@pytest.mark.parametrize(
    "text, fractions, expected",
    [
        ("0.2 to 0.5", True, (10.0, 25.0)),
        ("0.2 to 0.5", False, (0.2, 0.5)),
        ("20% - 50%", False, (10.0, 25.0)),  # percentages are always fractions of the duration
        ('{"start_time": "0.1", "end_time": "1.0"}', True, (5.0, 50.0)),
    ],
)
def test_parse_interval_fractions(text, fractions, expected):
    assert parse_interval(text, duration=50.0, fractions=fractions) == pytest.approx(expected)


def test_parse_intervals_several_and_strip():
    assert parse_intervals("1 - 2 and also [5, 8]") == [(1.0, 2.0), (5.0, 8.0)]
    assert strip_intervals("B, 12.5 to 20") == "B"
    assert strip_intervals("a man cooks, from 3s to 5s") == "a man cooks"
    assert strip_intervals("B (12.5 - 20)") == "B"
    assert strip_intervals("red [1, 2] and [3, 4]") == "red and"


@pytest.mark.parametrize("token, seconds", [("12.5", 12.5), ("00:12.5", 12.5), ("2:03", 123.0), ("1:00:01", 3601.0)])
def test_parse_time(token, seconds):
    assert parse_time(token) == seconds


OPTIONS = ["a red car", "a blue bicycle", "a dog on a leash", "a man with an umbrella"]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("B", "B"),
        ("b", "B"),
        ("(B)", "B"),
        ("[B]", "B"),
        ("B.", "B"),
        ("B:", "B"),
        ("**B**", "B"),
        ("B) a blue bicycle", "B"),
        ("B. a blue bicycle", "B"),
        ("(C) a dog", "C"),
        ("D - a man with an umbrella", "D"),
        ("the answer is B", "B"),
        ("The correct answer is (C).", "C"),
        ("Answer: D", "D"),
        ("I would pick option C because of the leash.", "C"),
        ("a blue bicycle", "B"),  # option text
        ("The blue bicycle.", "B"),  # normalised option text
        ("I can see a dog on a leash in the video", "C"),  # option text inside the answer
        ("A man walks", None),  # the article, not option A
        ("E", None),  # out of range for four options
        ("the red car or the blue bicycle", None),  # ambiguous
        ("", None),
    ],
)
def test_parse_option_forms(text, expected):
    assert parse_option(text, OPTIONS) == expected


def test_parse_option_without_options_accepts_any_letter():
    assert parse_option("(E)") == "E"
    assert parse_option("The answer is F.") == "F"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("42", 42.0),
        ("42.", 42.0),
        ("-3.5", -3.5),
        ("1,200", 1200.0),
        ("There are 5 people.", 5.0),
        ("I count 3 cats and 4 dogs, so 7", 7.0),  # the last number
        ("12-15", 15.0),  # a range's dash is not a minus sign
        ("about three", 3.0),
        ("1e3", 1000.0),
        ("none", None),
        ("nan", None),
        ("", None),
    ],
)
def test_parse_number(text, expected):
    assert parse_number(text) == expected


def test_normalize_text():
    assert normalize_text("  The Red, car! ") == "red car"


EV = [Event(0.0, 12.5, "a man enters"), Event(12.5, 30.0, "he sits down")]


@pytest.mark.parametrize(
    "text",
    [
        "0.0 - 12.5 seconds, a man enters. 12.5 - 30.0 seconds, he sits down.",
        "0.0 - 12.5: a man enters\n12.5 - 30.0: he sits down",
        "Events:\n1. 0.0 - 12.5 seconds: a man enters.\n2. 12.5 - 30.0 seconds: he sits down.",
        "- [0, 12.5] a man enters\n- [12.5, 30] he sits down",
        "a man enters (0 - 12.5)\nhe sits down (12.5 - 30)",
        '[{"start": 0, "end": 12.5, "caption": "a man enters"}, {"timestamp": [12.5, 30], "sentence": "he sits down"}]',
    ],
)
def test_parse_events_forms(text):
    assert parse_events(text) == EV


def test_parse_events_nothing():
    assert parse_events("a man enters and sits down") == []


def test_column_items():
    assert as_events([{"start": 0, "end": 1, "caption": "x"}, Event(1, 2, "y"), [2, 3, "z"]]) == [
        Event(0.0, 1.0, "x"), Event(1, 2, "y"), Event(2.0, 3.0, "z"),
    ]
    assert as_intervals([[1, 2], (3, 4)]) == [(1.0, 2.0), (3.0, 4.0)]
    assert as_intervals([1, 2]) == [(1.0, 2.0)]
    assert as_intervals(None) == []
