"""Grounding metric conventions: standard (Moment-DETR's compute_mr_r1), training, temporal_r1.
Hand-worked cases; docs/fidelity.md has the fuzz figures against the reference code."""

from __future__ import annotations

import pytest

from rlvid.eval.conventions import prediction_iou, standard_iou, temporal_r1_interval
from rlvid.eval.metrics import evaluate_completions, grounding_metrics


@pytest.mark.parametrize(
    "pred, gts, expected",
    [
        ((2.0, 6.0), [(2.0, 6.0)], 1.0),
        ((4.0, 8.0), [(2.0, 6.0)], 2 / 6),
        ((6.0, 2.0), [(2.0, 6.0)], 0.0),  # reversed: not swapped
        ((-2.0, 6.0), [(2.0, 6.0)], 4 / 8),  # negative: not clipped
        ((2.0, 20.0), [(2.0, 6.0)], 4 / 18),  # past the video: not clipped
        ((3.0, 3.0), [(2.0, 6.0)], 0.0),  # zero length
        ((5.0, 5.0), [(5.0, 5.0)], 0.0),  # equal points: 0 (rlvid's interval_iou says 1)
        ((4.0, 8.0), [(0.0, 1.0), (5.0, 8.0), (4.0, 9.0)], 4 / 5),  # the best window counts
        ((4.0, 8.0), [(0.0, 1.0), (20.0, 30.0)], 0.0),
        (None, [(2.0, 6.0)], 0.0),  # unparseable
        ((float("nan"), 3.0), [(2.0, 6.0)], 0.0),
    ],
)
def test_standard_iou(pred, gts, expected):
    assert standard_iou(pred, gts) == pytest.approx(expected, abs=1e-12)


def test_standard_picks_the_window_by_true_iou_first_on_ties():
    # Both windows give IoU 0.5 with (0, 2): the first is chosen (numpy argmax).
    assert standard_iou((0.0, 2.0), [(0.0, 1.0), (1.0, 2.0)]) == 0.5


def test_default_grounding_metrics_are_moment_detr():
    preds = [(10.0, 20.0), (20.0, 10.0), (-5.0, 15.0), (10.0, 80.0), None]
    gts = [[(10, 20)], [(10, 20)], [(0, 15)], [(10, 20)], [(0, 5)]]
    out = grounding_metrics(preds, gts, durations=[60.0] * 5)
    ious = [1.0, 0.0, 15 / 20, 10 / 70, 0.0]
    assert out == pytest.approx({"R1@0.3": 2 / 5, "R1@0.5": 2 / 5, "R1@0.7": 2 / 5, "mIoU": sum(ious) / 5})


def test_training_convention_swaps_and_clips():
    preds = ["<answer>20 to 10</answer>", "<answer>-5 to 15</answer>", "<answer>50 to 80</answer>"]
    gts = [[(10, 20)], [(0, 15)], [(50, 60)]]
    std = grounding_metrics(preds, gts, durations=[60.0] * 3, thresholds=[0.5])
    train = grounding_metrics(preds, gts, durations=[60.0] * 3, thresholds=[0.5], convention="training")
    assert std == pytest.approx({"R1@0.5": 1 / 3, "mIoU": (0.0 + 0.75 + 1 / 3) / 3})
    assert train == pytest.approx({"R1@0.5": 1.0, "mIoU": (1.0 + 1.0 + 1.0) / 3})


THINK = "<think>t</think>"


@pytest.mark.parametrize(
    "text, expected",
    [
        (f'{THINK}<answer>{{"start_time": "2", "end_time": "6"}}</answer>', (2.0, 6.0)),
        (f'{THINK}<answer>{{"start_time": "6", "end_time": "2"}}</answer>', (2.0, 6.0)),  # swapped
        (f'x {THINK}<answer>{{"start_time": "2", "end_time": "6"}}</answer> y', (2.0, 6.0)),  # searched, not whole
        (f'{THINK}<answer>{{"start_time": "1.2.3", "end_time": "6"}}</answer>', (0.0, 0.0)),  # float fails
        ("<answer>2 to 6</answer>", (0.0, 0.0)),  # any other form: "0.0-0.0"
        (f'{THINK}<answer>{{"start_time": "0.00001", "end_time": "6"}}</answer>', (5.0, 6.0)),  # "1e-05-6.0"
    ],
)
def test_temporal_r1_reading(text, expected):
    assert temporal_r1_interval(text) == expected


def test_temporal_r1_convention_iou():
    good = f'{THINK}<answer>{{"start_time": "4", "end_time": "8"}}</answer>'
    assert prediction_iou(good, [(2.0, 6.0), (4.0, 8.0)], convention="temporal_r1") == pytest.approx(2 / 6)  # first
    assert prediction_iou("<answer>4 to 8</answer>", [(2.0, 6.0)], convention="temporal_r1") == 0.0
    assert prediction_iou("<answer>0 to 6</answer>", [(0.0, 6.0)], convention="temporal_r1") == 0.0  # (0,0) vs (0,6)
    assert prediction_iou((8.0, 4.0), [(2.0, 6.0)], convention="temporal_r1") == pytest.approx(2 / 6)


def test_unknown_convention_and_evaluate_completions():
    with pytest.raises(ValueError, match="allowed: \\['standard', 'training', 'temporal_r1'\\]"):
        grounding_metrics([(1.0, 2.0)], [[(1, 2)]], convention="moment_detr")
    samples = [{"task": "temporal_grounding", "intervals": [[10, 20]], "duration": 60.0}]
    assert evaluate_completions(["<answer>20 to 10</answer>"], samples)["temporal_grounding/mIoU"] == 0.0
    assert evaluate_completions(["<answer>20 to 10</answer>"], samples, convention="training")[
        "temporal_grounding/mIoU"] == 1.0
