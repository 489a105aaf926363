"""Evaluation metrics against hand-computed values."""

from __future__ import annotations

import pytest

from rewards.captions import FunctionScorer
from rlvid.data.sample import Event, Sample
from rlvid.eval.metrics import (
    dense_caption_metrics,
    evaluate_completions,
    grounded_qa_metrics,
    grounding_metrics,
    mcq_accuracy,
)


def test_grounding_metrics_hand_computed():
    preds = [
        "<think>t</think><answer>10 to 20</answer>",  # IoU 1
        "<answer>15 to 25</answer>",  # 5 / 15
        "<answer>from 12s to 20s</answer>",  # 0.8
        "<answer>I am not sure</answer>",  # unparseable: IoU 0, still counted
    ]
    out = grounding_metrics(preds, [[[10, 20]]] * 4, durations=[60.0] * 4)
    assert out == pytest.approx({"R1@0.3": 0.75, "R1@0.5": 0.5, "R1@0.7": 0.5, "mIoU": (1 + 1 / 3 + 0.8) / 4})


def test_grounding_metrics_parsed_predictions():
    out = grounding_metrics([(10.0, 20.0), None], [[(10, 20)], [(0, 5)]], thresholds=[0.5])
    assert out == {"R1@0.5": 0.5, "mIoU": 0.5}
    with pytest.raises(ValueError, match="2 predictions for 1 ground truths"):
        grounding_metrics(["a", "b"], [[(0, 1)]])


def test_mcq_accuracy():
    preds = ["<answer>B</answer>", "<answer>(C)</answer>", "the answer is B", "<answer>nope</answer>"]
    assert mcq_accuracy(preds, ["B"] * 4, [["w", "x", "y", "z"]] * 4) == 0.5


def test_grounded_qa_metrics_hand_computed():
    preds = [
        "<answer>red from 2 to 6</answer>",  # right; IoU 1, IoP 1
        "<answer>blue from 4 to 8</answer>",  # wrong; IoU 2/6, IoP 2/4
        "<answer>red from 3 to 4</answer>",  # right; IoU 1/4, IoP 1
        "<answer>red</answer>",  # right; no interval: 0, 0
    ]
    out = grounded_qa_metrics(preds, ["red"] * 4, [[[2, 6]]] * 4, durations=[10.0] * 4)
    assert out == pytest.approx({
        "accuracy": 0.75,
        "mIoU": (1 + 1 / 3 + 0.25) / 4,
        "mIoP": (1 + 0.5 + 1) / 4,
        "IoU@0.3": 0.5,
        "IoP@0.3": 0.75,
        "IoU@0.5": 0.25,
        "IoP@0.5": 0.75,
        "acc@GQA": 0.5,
    })


def exact(h: str, r: str) -> float:
    return 1.0 if h == r else 0.0


def test_dense_caption_metrics_hand_computed():
    gt1 = [Event(0, 10, "a"), Event(10, 20, "b"), Event(20, 30, "c")]
    gt2 = [Event(0, 10, "x"), Event(5, 15, "y")]
    # Video 2: p [2,12] "x" has IoU 8/12 with "x" and 7/13 with "y".
    # SODA_c: S = 8/12 -> F = 2S / (1 + 2); tIoU-averaged exact match: (0.5 + 0.5 + 0 + 0) / 4;
    # localisation: hits both at > 0.3 and > 0.5, nothing above -> P = R = 0.5.
    preds = ["<answer>0 - 10 seconds: a\n10 - 20 seconds: b\n20 - 30 seconds: c</answer>", [Event(2, 12, "x")]]
    out = dense_caption_metrics(preds, [gt1, gt2], durations=[30.0, 30.0],
                                caption_scorers=[FunctionScorer(exact, "exact")], soda_scorer=exact)
    assert out == pytest.approx({
        "SODA_c": (1 + 2 * (8 / 12) / 3) / 2,
        "exact": (1 + 0.25) / 2,
        "precision": 0.75,
        "recall": 0.75,
        "F1": 0.75,
    })


def test_dense_caption_metrics_with_meteor_and_cider():
    """Real METEOR (Java): the identical caption at IoU 0.6 counts at tIoU 0.3 and 0.5 only."""
    cap = "a man is running in the park"
    out = dense_caption_metrics([[Event(0, 6, cap)]], [[Event(0, 10, cap)]])
    assert out["METEOR"] == pytest.approx(0.5)
    assert out["SODA_c"] == pytest.approx(0.6)  # S = IoU 0.6 x METEOR 1; F = 2S / (1 + 1)
    # CIDEr takes its IDF from the video's own pairs; with a single reference every n-gram's IDF
    # is log(1) - log(1) = 0, so CIDEr is 0 (the reference evaluation behaves the same way).
    assert out["CIDEr"] == 0.0
    assert (out["precision"], out["recall"]) == (0.5, 0.5)


def test_evaluate_completions_mixed_tasks():
    samples = [
        Sample.from_dict(dict(id="1", video="v", duration=30.0, task="mcq", question="q", options=["a", "b"],
                              answer="A")),
        dict(id="2", video="v", duration=30.0, task="mcq", question="q", options=["a", "b"], answer="B"),
        dict(id="3", video="v", duration=30.0, task="temporal_grounding", question="q", intervals=[[10, 20]]),
        dict(id="4", video="v", duration=30.0, task="numeric", question="q", answer="4"),
    ]
    comps = ["<answer>A</answer>", "<answer>A</answer>", "<answer>15 to 20</answer>", "<answer>4</answer>"]
    out = evaluate_completions(comps, samples)
    assert out == pytest.approx({
        "mcq/accuracy": 0.5, "mcq/count": 2.0,
        "numeric/accuracy": 1.0, "numeric/count": 1.0,
        "temporal_grounding/R1@0.3": 1.0, "temporal_grounding/R1@0.5": 1.0, "temporal_grounding/R1@0.7": 0.0,
        "temporal_grounding/mIoU": 0.5, "temporal_grounding/count": 1.0,
    })
