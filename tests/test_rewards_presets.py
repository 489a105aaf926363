"""Presets reproduce the papers' reference rewards: hand-worked cases covering every branch of
each reference (the references themselves are not shipped; docs/fidelity.md has the fuzz figures)."""

from __future__ import annotations

import pytest

from rewards import accuracy_reward, build_reward, format_reward, temporal_iou_reward
from rewards.errors import RewardError
from rewards.presets import time_r1, video_r1

THINK = "<think>t</think>"


def tvg(start: str, end: str) -> str:
    return f'{THINK}<answer>{{"start_time": "{start}", "end_time": "{end}"}}</answer>'


# ---------------------------------------------------------------- temporal_r1: format


@pytest.mark.parametrize(
    "text, grounding, other",
    [
        (tvg("1.5", "3"), 1.0, 1.0),
        (f'{THINK}\n<answer>\n{{ "start_time" : "1" ,\n"end_time":"2" }}\n</answer>', 1.0, 1.0),  # whitespace
        (tvg("1.2.3", "4"), 1.0, 1.0),  # digits and dots, not a number: still well-formed
        (tvg("\u0661\u0662", "20"), 1.0, 1.0),  # \d is any Unicode digit
        (tvg("-3", "5"), 0.0, 1.0),  # a sign is not [\d.]
        (tvg("", "5"), 0.0, 1.0),
        (f'{THINK}<answer>{{"start_time": 1.5, "end_time": 3}}</answer>', 0.0, 1.0),  # numbers not strings
        (f'{THINK}<answer>{{"end_time": "3", "start_time": "1"}}</answer>', 0.0, 1.0),  # key order
        (" " + tvg("1", "3"), 0.0, 0.0),  # nothing may surround it
        (tvg("1", "3") + "\n", 0.0, 0.0),
        ('<answer>{"start_time": "1", "end_time": "3"}</answer>', 0.0, 0.0),  # no think block
        (f"{THINK}<answer>B</answer>", 0.0, 1.0),
        ("<think>a\nb</think> <answer>B</answer>", 0.0, 1.0),
        (f"{THINK}<answer>B</answer> done", 0.0, 0.0),
    ],
)
def test_temporal_r1_format(text, grounding, other):
    assert format_reward([text], preset="temporal_r1", task=["temporal_grounding"]) == [grounding]
    assert format_reward([text], preset="temporal_r1", task=["mcq"]) == [other]


# ---------------------------------------------------------------- temporal_r1: IoU


def tr1_iou(text: str, gts=((2.0, 6.0),), duration: float = 10.0) -> float:
    return temporal_iou_reward([text], intervals=[[list(g) for g in gts]], duration=[duration],
                               task=["temporal_grounding"], preset="temporal_r1")[0]


@pytest.mark.parametrize(
    "text, expected",
    [
        (tvg("2", "6"), 1.0),
        (tvg("4", "8"), 2 / 6),
        ('<answer>{"start_time": 4, "end_time": 8}</answer>', 2 / 6),  # JSON numbers, no think: still read
        ('<answer>\n{"start_time": "4",\n"end_time": "8"}\n</answer>', 2 / 6),  # block spans lines
        (tvg("4", "8") + '<answer>{"start_time": "2", "end_time": "6"}</answer>', 2 / 6),  # FIRST block
        (tvg("6", "2"), 0.0),  # reversed: no overlap, not swapped
        (tvg("-2", "6"), 4 / 8),  # negative, not clipped
        (tvg("2", "20"), 4 / 18),  # past the end, not clipped
        (tvg("1e1", "2e1"), 0.0),  # float() reads exponents: (10, 20), disjoint
        (tvg("1.2.3", "4"), 0.0),  # float() fails
        ('<answer>{"start_time": true, "end_time": "6"}</answer>', 4 / 5),  # float(True) == 1.0 -> (1, 6) vs (2, 6)
        ('<answer>{"start_time": NaN, "end_time": "6"}</answer>', 0.0),
        ('<answer>{"start_time": "2"}</answer>', 0.0),  # missing key
        ('<answer>["2", "6"]</answer>', 0.0),  # not an object
        ("<answer>2 to 6</answer>", 0.0),  # not JSON
        ('{"start_time": "2", "end_time": "6"}', 0.0),  # no answer block
        (tvg("6", "6"), 0.0),  # zero length inside the truth
    ],
)
def test_temporal_r1_iou(text, expected):
    assert tr1_iou(text) == pytest.approx(expected, abs=1e-12)


def test_temporal_r1_iou_edge_cases():
    assert tr1_iou(tvg("2", "6"), duration=0.0) == 0.0  # division by zero -> 0
    assert tr1_iou(tvg("3", "3"), gts=((3.0, 3.0),)) == 0.0  # zero-width hull -> 0
    assert tr1_iou(tvg("2", "6"), gts=((0.0, 1.0), (2.0, 6.0))) == 1.0  # several truths: the best counts


# ---------------------------------------------------------------- temporal_r1: accuracy (mathruler)


@pytest.mark.parametrize(
    "text, answer, expected",
    [
        ("<answer>B</answer>", "B", 1.0),
        ("<answer> b </answer>", "B", 1.0),  # case-insensitive normalisation
        ("<answer>(B)</answer>", "B", 1.0),
        ("<answer>B.</answer>", "B", 0.0),
        ("<answer>1,200</answer>", "1200", 1.0),
        ("<answer>0.5</answer>", "\\frac{1}{2}", 1.0),  # sympy equivalence
        ("<answer>12 apples</answer>", "12", 0.0),
        ("<answer>\nB\n</answer>", "B", 0.0),  # the block must sit on one line, else the whole text is graded
        ("B", "B", 1.0),  # no block: the whole completion
        ("<answer>A</answer><answer>B</answer>", "B", 0.0),  # first block
        ("<answer></answer>", "B", 0.0),
    ],
)
def test_temporal_r1_accuracy(text, answer, expected):
    pytest.importorskip("mathruler")
    task = "mcq" if answer.isalpha() else "numeric"
    assert accuracy_reward([text], task=[task], answer=[answer], preset="temporal_r1") == [expected]


def test_temporal_r1_accuracy_not_for_grounding():
    pytest.importorskip("mathruler")
    assert accuracy_reward(["x"], task=["temporal_grounding"], answer=["B"], preset="temporal_r1") == [None]


# ---------------------------------------------------------------- time_r1


def t_iou(text: str, gt=(20.0, 50.0), duration: float = 100.0) -> float:
    return temporal_iou_reward([text], intervals=[[list(gt)]], duration=[duration], preset="time_r1")[0]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("<answer>20 to 50</answer>", 1.0),
        ("<answer>20.0 and 50.</answer>", 1.0),  # "and", a trailing dot
        ("<answer>From 30 TO 50</answer>", (20 / 30) * 0.9 * 1.0),  # case-insensitive
        ("<answer>10 to 20 then 20 to 50</answer>", 1.0),  # the LAST pair
        ("<answer>20 to 50</answer><answer>30 to 50</answer>", (20 / 30) * 0.9),  # the LAST block
        ("<answer>\n20 to 50\n</answer>", 1.0),  # blocks span lines
        ("<answer>20  to 50</answer>", 0.0),  # exactly one space each side
        ("<answer>20 - 50</answer>", 0.0),
        ("<answer>20-50 seconds</answer>", 0.0),
        ("<answer>-30 to 50</answer>", (20 / 30) * 0.9),  # the sign is not read: (30, 50)
        ("<answer>00:20 to 00:50</answer>", 0.0),  # colons: reads "20 to 00" -> (20, 0), reversed
        ("<answer>50 to 20</answer>", 0.0),  # reversed: no overlap
        ("20 to 50", 0.0),  # no answer block
        ("<answer>20 to 50", 0.0),  # unclosed
        ("<answer>0 to 300</answer>", (30 / 300) * 0.8 * (1 - 2.5)),  # not clipped: below 0
        ("<answer>" + "9" * 400 + " to 50</answer>", 0.0),  # inf: the reference gives NaN, rlvid 0
    ],
)
def test_time_r1_iou(text, expected):
    assert t_iou(text) == pytest.approx(expected, abs=1e-12)


def test_time_r1_can_be_negative_and_needs_duration():
    assert t_iou("<answer>0 to 300</answer>") < 0
    with pytest.raises(ValueError, match="positive 'duration'"):
        temporal_iou_reward(["<answer>1 to 2</answer>"], intervals=[[[1, 2]]], duration=[None], preset="time_r1")
    assert time_r1.iou_score("<answer>5 to 5</answer>", [(5.0, 5.0)], 10.0) == 0.0  # reference: stale IoU


@pytest.mark.parametrize(
    "text, expected",
    [(f"{THINK}<answer>x</answer>", 1.0), (f"  {THINK}\n<answer>x</answer>\n", 1.0),
     (f"{THINK}x<answer>x</answer>", 0.0), ("<answer>x</answer>", 0.0)],
)
def test_time_r1_format_strips(text, expected):
    assert format_reward([text], preset="time_r1") == [expected]


# ---------------------------------------------------------------- video_r1


def v_acc(text: str, answer: str, kind: str | None = None, task: str = "open_qa") -> float | None:
    meta = {"problem_type": kind} if kind else None
    return accuracy_reward([text], task=[task], answer=[answer], meta=[meta], preset="video_r1")[0]


@pytest.mark.parametrize(
    "text, answer, kind, expected",
    [
        ("<answer>B</answer>", "B", "multiple choice", 1.0),
        ("<answer> B \n</answer>", "B", "multiple choice", 1.0),
        ("<answer>(B)</answer>", "B", "multiple choice", 0.0),  # exact match only
        ("<answer>b</answer>", "B", "multiple choice", 0.0),
        ("<answer>B</answer><answer>C</answer>", "B", "multiple choice", 1.0),  # first block
        ("B", "B", "multiple choice", 0.0),  # no block: ""
        ("<answer>B</answer>", "<answer>B</answer>", "multiple choice", 1.0),  # tagged ground truth
        ("<answer>12</answer>", "12", "numerical", 1.0),
        ("<answer>12.004</answer>", "12.0", "numerical", 1.0),  # equal at 2 decimals
        ("<answer>12.0</answer>", "12", "numerical", 0.0),  # only one has a decimal point
        ("<answer>1,200</answer>", "1200.5", "numerical", 0.0),  # both "decimal", 1200 != 1200.5
        ("<answer>1,200</answer>", "1.200", "numerical", 0.0),
        ("<answer>twelve</answer>", "12", "numerical", 0.0),  # float() fails
        ("<answer>stop sign</answer>", "stop sign", "OCR", 1.0),
        ("<answer>stop</answer>", "stop sign", "OCR", 0.5),  # 1 - WER
        ("<answer>a b c d e</answer>", "x", "OCR", 0.0),  # clipped at 0
        ("<answer>the dogs ran</answer>", "the dog runs", "free-form", None),  # ROUGE mean, below
        ("<answer>8</answer>", "10", "regression", 0.8),  # 1 - relative error
        ("<answer>30</answer>", "10", "regression", 0.0),  # clipped
        ("<answer>nan</answer>", "10", "regression", 1.0),  # the reference's NaN quirk
        ("<answer>ten</answer>", "10", "regression", 0.0),
        ("<answer>B</answer>", "B", "something else", 0.0),
    ],
)
def test_video_r1_accuracy(text, answer, kind, expected):
    if expected is None:  # stemmed: "dogs ran"/"dog runs" -> dog, ran/run: R1 = 2/3, R2 = 1/2, RL = 2/3
        expected = (2 / 3 + 1 / 2 + 2 / 3) / 3
    assert v_acc(text, answer, kind) == pytest.approx(expected, abs=1e-9)


def test_video_r1_problem_type_from_task():
    assert v_acc("<answer>B</answer>", "B", task="mcq") == 1.0
    assert v_acc("<answer>12.0</answer>", "12", task="numeric") == 0.0
    assert v_acc("<answer>x</answer>", "B", task="temporal_grounding") is None
    assert video_r1.problem_type("grounded_qa", None, ["a", "b"]) == "multiple choice"
    assert video_r1.word_error_rate("a b c", "a x c d") == pytest.approx(2 / 3)


def test_video_r1_format_does_not_strip():
    assert format_reward([f"{THINK}<answer>x</answer>"], preset="video_r1") == [1.0]
    assert format_reward([f" {THINK}<answer>x</answer>"], preset="video_r1") == [0.0]


# ---------------------------------------------------------------- options


def test_unknown_preset_is_refused_at_load():
    with pytest.raises(RewardError, match="option 'preset' is 'temporal-r1'"):
        build_reward({"name": "temporal_iou", "kwargs": {"preset": "temporal-r1"}})
    with pytest.raises(RewardError, match="allowed"):
        build_reward({"name": "accuracy", "kwargs": {"preset": "time_r1"}})
    assert build_reward({"name": "format", "kwargs": {"preset": "video_r1"}}).label == "format"


def test_temporal_r1_prompt_asks_for_the_form_its_preset_scores():
    import re

    from rlvid.data.prompts import build_prompt
    from rlvid.data.sample import Sample

    sample = Sample(id="x", video="v.mp4", duration=30.0, task="temporal_grounding", question="A man sits.",
                    intervals=[(2.0, 6.0)])
    example = re.search(r"<answer>.*?</answer>", build_prompt(sample, "temporal_r1")).group(0)
    assert format_reward([THINK + example], preset="temporal_r1", task=["temporal_grounding"]) == [1.0]
    default = re.search(r"<answer>.*?</answer>", build_prompt(sample)).group(0)
    assert format_reward([THINK + default], preset="temporal_r1", task=["temporal_grounding"]) == [0.0]
