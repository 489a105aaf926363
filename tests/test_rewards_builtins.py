"""Table-driven tests of the builtin rewards: format, accuracy, temporal_iou, grounded_qa, overlong."""

from __future__ import annotations

import pytest

from rewards.accuracy import accuracy_reward, mean_relative_accuracy
from rewards.format import format_reward
from rewards.grounded_qa import grounded_qa_reward
from rewards.overlong import overlong_penalty, overlong_reward
from rewards.temporal_iou import temporal_iou_reward

# ---------------------------------------------------------------- format

GOOD = "<think>look at frame 3</think>\n<answer>B</answer>"


@pytest.mark.parametrize(
    "text, strict, lenient",
    [
        (GOOD, 1.0, 1.0),
        ("  " + GOOD + "\n", 1.0, 1.0),
        ("<think>x</think><answer>B</answer>", 1.0, 1.0),
        ("Sure! " + GOOD, 0.0, 1.0),  # text before
        (GOOD + " Hope this helps.", 0.0, 1.0),  # text after
        ("<think>x</think>\nso\n<answer>B</answer>", 0.0, 1.0),  # text between
        ("<answer>B</answer>", 0.0, 0.0),  # think required
        ("<think> </think><answer>B</answer>", 0.0, 0.0),  # empty think
        ("<think>x</think><answer> </answer>", 0.0, 0.0),  # empty answer
        ("<think>x</think><answer>B</answer><answer>C</answer>", 0.0, 1.0),  # two answers
        ("<think>x<think>y</think><answer>B</answer>", 0.0, 1.0),  # nested think
        ("<answer>B</answer><think>x</think>", 0.0, 0.0),  # wrong order
        ("<think>x</think> B", 0.0, 0.0),  # no answer block
        ("<think>x</think><answer>B", 0.0, 0.0),  # unterminated
        ("B", 0.0, 0.0),
        ("", 0.0, 0.0),
    ],
)
def test_format_required_think(text, strict, lenient):
    assert format_reward([text]) == [strict]
    assert format_reward([text], mode="lenient") == [lenient]


@pytest.mark.parametrize(
    "text, think, strict, lenient",
    [
        ("<answer>B</answer>", "forbidden", 1.0, 1.0),
        (GOOD, "forbidden", 0.0, 0.0),
        ("Answer below. <answer>B</answer>", "forbidden", 0.0, 1.0),
        ("<answer>B</answer>", "optional", 1.0, 1.0),
        (GOOD, "optional", 1.0, 1.0),
        ("<think></think><answer>B</answer>", "optional", 1.0, 1.0),
        ("<think>x</think><answer>B</answer>", "optional", 1.0, 1.0),
        ("<think>x<answer>B</answer>", "optional", 0.0, 0.0),  # a stray think tag
    ],
)
def test_format_think_options(text, think, strict, lenient):
    assert format_reward([text], think=think) == [strict]
    assert format_reward([text], mode="lenient", think=think) == [lenient]


def test_format_rejects_bad_option():
    with pytest.raises(ValueError, match="option 'mode'"):
        format_reward(["x"], mode="loose")


# ---------------------------------------------------------------- accuracy

OPTS = ["a red car", "a blue bicycle", "a dog on a leash", "a man with an umbrella"]


def _acc(answer_text, task, answer, options=None, **kw):
    return accuracy_reward([f"<think>t</think><answer>{answer_text}</answer>"], task=[task], answer=[answer],
                           options=[options], **kw)[0]


@pytest.mark.parametrize(
    "text, expected",
    [("B", 1.0), ("(B)", 1.0), ("B.", 1.0), ("B) a blue bicycle", 1.0), ("the answer is B", 1.0),
     ("a blue bicycle", 1.0), ("C", 0.0), ("(C) a dog on a leash", 0.0), ("I don't know", 0.0), ("", 0.0)],
)
def test_accuracy_mcq(text, expected):
    assert _acc(text, "mcq", "B", OPTS) == expected


@pytest.mark.parametrize(
    "text, gt, kw, expected",
    [
        ("7", "7", {}, 1.0),
        ("There are 7 people.", "7", {}, 1.0),
        ("7.0", "7", {}, 1.0),
        ("8", "7", {}, 0.0),
        ("seven", "7", {}, 1.0),
        ("105", "100", {"rel_tol": 0.05}, 1.0),
        ("106", "100", {"rel_tol": 0.05}, 0.0),
        ("no number", "7", {}, 0.0),
        # MRA: relative error 0.1 is < 1 - theta for theta in 0.50..0.85 (8 of 10)
        ("110", "100", {"numeric": "mra"}, 0.8),
        ("100", "100", {"numeric": "mra"}, 1.0),
        ("160", "100", {"numeric": "mra"}, 0.0),
    ],
)
def test_accuracy_numeric(text, gt, kw, expected):
    assert _acc(text, "numeric", gt, **kw) == pytest.approx(expected)


@pytest.mark.parametrize(
    "pred, gt, expected",
    # relative error must be strictly below 1 - theta: 0.05 passes 9 of the 10 thresholds
    [(100, 100, 1.0), (104, 100, 1.0), (149, 100, 0.1), (150, 100, 0.0), (0, 0, 1.0), (1, 0, 0.0), (-95, -100, 0.9)],
)
def test_mean_relative_accuracy(pred, gt, expected):
    assert mean_relative_accuracy(pred, gt) == pytest.approx(expected)


def test_accuracy_open_ended():
    assert _acc("The man cooks pasta.", "open_qa", "a man cooks pasta", open_metric="exact") == 1.0
    assert _acc("a man cooks rice", "open_qa", "a man cooks pasta", open_metric="exact") == 0.0
    # ROUGE-L: LCS "a man cooks" = 3 of 4 tokens each side -> F = 0.75
    assert _acc("a man cooks rice", "open_qa", "a man cooks pasta") == pytest.approx(0.75)
    assert _acc("", "open_qa", "a man cooks pasta") == 0.0


def test_accuracy_task_dispatch_and_none():
    comps = ["<answer>B</answer>", "<answer>3 to 5</answer>", "<answer>x</answer>", "<answer>4</answer>"]
    out = accuracy_reward(
        comps,
        task=["mcq", "temporal_grounding", "dense_caption", None],
        answer=["B", None, None, "4"],
        options=[OPTS, None, None, None],
    )
    assert out == [1.0, None, None, 1.0]  # task inferred as numeric for the last one
    assert accuracy_reward(["<answer>4</answer>"], answer=[4]) == [1.0]  # a number as the answer


def test_accuracy_grounded_qa_answer_part():
    out = accuracy_reward(
        ["<answer>B, 12.5 to 20</answer>", "<answer>a dog, from 3s to 5s</answer>", "<answer>B (12.5 - 20)</answer>",
         "<answer>a dog between 3 and 5 seconds</answer>", "<answer>a cat from 3s to 5s</answer>"],
        task=["grounded_qa"] * 5, answer=["B", "a dog", "B", "a dog", "a dog"], options=[OPTS, None, OPTS, None, None],
        open_metric="exact",
    )
    assert out == [1.0, 1.0, 1.0, 1.0, 0.0]


def test_accuracy_unknown_task_raises():
    with pytest.raises(ValueError, match="unknown task"):
        accuracy_reward(["x"], task=["mcqq"], answer=["A"])


# ---------------------------------------------------------------- temporal_iou


def _tiou(answer, gt=((10.0, 20.0),), duration=100.0, task="temporal_grounding", **kw):
    return temporal_iou_reward([f"<answer>{answer}</answer>"], intervals=[list(gt)], duration=[duration],
                               task=[task], **kw)[0]


@pytest.mark.parametrize(
    "answer, expected",
    [
        ("10 to 20", 1.0),
        ("15 - 20.0 seconds", 0.5),
        ("[15, 25]", 5 / 15),
        ("00:10-00:20", 1.0),
        ("from 10s to 15s", 0.5),
        ('{"start_time": "10", "end_time": "20"}', 1.0),
        ("30 to 40", 0.0),
        ("I cannot tell", 0.0),
    ],
)
def test_temporal_iou_plain(answer, expected):
    assert _tiou(answer) == pytest.approx(expected)


def test_temporal_iou_options():
    assert _tiou("20 to 10") == 1.0  # swapped
    assert _tiou("20 to 10", on_reversed="zero") == 0.0
    assert _tiou("10 to 150", gt=[(10, 100)]) == 1.0  # clipped to the duration
    assert _tiou("10 to 150", gt=[(10, 100)], clip=False) == pytest.approx(90 / 140)
    assert _tiou("0.1 to 0.2", fractions=True) == 1.0
    # Time-R1: IoU 0.5 x (1 - 5/100) x (1 - 0/100)
    assert _tiou("15 to 20", variant="time_r1") == pytest.approx(0.5 * 0.95)
    assert _tiou("10 to 20", variant="time_r1") == 1.0
    # several ground-truth intervals: the best match counts
    assert _tiou("50 to 60", gt=[(10, 20), (50, 60)]) == 1.0


def test_temporal_iou_not_applicable():
    out = temporal_iou_reward(["<answer>B</answer>"] * 3, intervals=[None, [[1, 2]], []],
                              task=["mcq", "dense_caption", "temporal_grounding"])
    assert out == [None, None, None]


def test_temporal_iou_time_r1_needs_duration():
    with pytest.raises(ValueError, match="duration"):
        temporal_iou_reward(["<answer>1 to 2</answer>"], intervals=[[[1, 2]]], variant="time_r1")


# ---------------------------------------------------------------- grounded_qa


def test_grounded_qa_subscores():
    out = grounded_qa_reward(
        ["<answer>B, 10 to 20</answer>", "<answer>(C) 15 - 25</answer>", "<answer>B</answer>",
         "<answer>B</answer>"],
        task=["grounded_qa", "grounded_qa", "grounded_qa", "mcq"],
        answer=["B", "B", "B", "B"],
        options=[OPTS] * 4,
        intervals=[[[10, 20]]] * 4,
        duration=[100.0] * 4,
        answer_weight=1.0,
        iou_weight=0.5,
    )
    assert out["answer"] == [1.0, 0.0, 1.0, None]
    assert out["iou"] == pytest.approx([0.5, 0.5 * 5 / 15, 0.0, None])


def test_grounded_qa_merges_predicted_intervals_and_iop():
    comp = ["<think>t</think><answer>a dog</answer><time>10 to 12, 14 to 20</time>"]
    cols = dict(task=["grounded_qa"], answer=["a dog"], intervals=[[[10, 20]]], duration=[60.0],
                open_metric="exact")
    out = grounded_qa_reward(comp, **cols)
    assert out == {"answer": [1.0], "iou": [pytest.approx(0.8)]}
    out = grounded_qa_reward(["<answer>a cat</answer><time>15 to 25</time>"], overlap="iop", **cols)
    assert out == {"answer": [0.0], "iop": [pytest.approx(0.5)]}


# ---------------------------------------------------------------- overlong


@pytest.mark.parametrize("length, expected", [(0, 0.0), (80, 0.0), (90, -0.5), (100, -1.0), (101, -1.0)])
def test_overlong_penalty(length, expected):
    assert overlong_penalty(length, max_length=100, cache_length=20) == pytest.approx(expected)


def test_overlong_reward_units():
    comps = ["x" * 90, "x" * 10]
    assert overlong_reward(comps, max_length=100, cache_length=20, completion_lengths=[90, 10]) == [-0.5, 0.0]
    assert overlong_reward(comps, max_length=100, cache_length=20, completion_ids=[[0] * 100, [0]]) == [-1.0, 0.0]
    assert overlong_reward(comps, max_length=100, cache_length=20, unit="chars") == [-0.5, 0.0]
    assert overlong_reward(["a b c"], max_length=5, cache_length=4, unit="words") == [-0.5]
    assert overlong_reward(["x"], max_length=100, completion_lengths=[90]) == [-0.5]  # default cache 20
    with pytest.raises(ValueError, match="completion_lengths"):
        overlong_reward(comps, max_length=100)


# ---------------------------------------------------------------- the prompts' own answer format


def test_prompt_target_answers_score_perfectly():
    """What `prompts.target_answer` writes (the format the prompts ask for) must earn full reward."""
    from rewards.dense_caption import dense_caption_reward
    from rlvid.data.prompts import target_answer
    from rlvid.data.sample import Sample

    raw = [
        dict(task="temporal_grounding", intervals=[[2.0, 5.5]]),
        dict(task="mcq", options=["red", "blue", "green"], answer="C"),
        dict(task="grounded_qa", answer="a red ball", intervals=[[2.0, 5.5]]),
        dict(task="grounded_qa", options=["red", "blue"], answer="blue", intervals=[[1.0, 3.0]]),
        dict(task="dense_caption", events=[{"start": 0, "end": 3.5, "caption": "a red circle moves left"},
                                           {"start": 3.5, "end": 9, "caption": "it stops"}]),
        dict(task="open_qa", answer="a blue square"),
        dict(task="numeric", answer="3"),
    ]
    samples = [Sample.from_dict(dict(id=str(i), video="v.mp4", duration=10.0, question="q", **r))
               for i, r in enumerate(raw)]
    comps = ["<think>because</think>" + target_answer(s) for s in samples]
    cols = {k: [getattr(s, k) for s in samples] for k in ("task", "answer", "options", "intervals", "events",
                                                            "duration")}
    assert format_reward(comps) == [1.0] * 7
    assert accuracy_reward(comps, **cols) == [None, 1.0, 1.0, 1.0, None, 1.0, 1.0]
    assert temporal_iou_reward(comps, **cols) == [1.0, None, 1.0, 1.0, None, None, None]
    gqa = grounded_qa_reward(comps, **cols)
    assert gqa["answer"][2:4] == [1.0, 1.0] and gqa["iou"][2:4] == [1.0, 1.0]
    assert dense_caption_reward(comps, caption_scorer=lambda h, r: float(h == r), **cols)[4] == pytest.approx(1.0)
