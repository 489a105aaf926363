"""The official SODA_c option (fujiso/SODA's numbers): hand-checked pieces, and the whole against
rlvid's paper SODA_c where they must agree. Java runs the PTB tokenizer and METEOR (setup installs it)."""

from __future__ import annotations

import pytest

from rewards.captions import FunctionScorer
from rewards.soda import soda_c
from rewards.soda_official import official_iou, ptb_tokenize, remove_nonascii, soda_c_official
from rlvid.data.sample import Event, Sample
from rlvid.eval.metrics import dense_caption_metrics, evaluate_completions


def test_official_iou_uses_the_shorter_union_and_an_epsilon():
    assert official_iou((0, 4), (2, 6)) == pytest.approx(2 / (6 + 1e-8))
    assert official_iou((0, 2), (4, 6)) == 0.0  # disjoint: hull 6, summed lengths 4; overlap 0
    assert official_iou((3, 3), (3, 3)) == 0.0  # no division by zero


def test_remove_nonascii_keeps_the_length():
    assert remove_nonascii("café ok") == "caf  ok"


def test_ptb_tokenisation_splits_possessives_and_drops_punctuation():
    # Brackets survive: the tokenizer lower-cases "-LRB-" before pycocoevalcap's filter looks for it.
    assert ptb_tokenize(["A woman's hat, falls.", "He -- quickly (slowly)!"]) == ["a woman 's hat falls",
                                                                                 "he quickly -lrb- slowly -rrb-"]


def test_official_soda_takes_the_best_reference_list():
    pred = [Event(0, 10, "a man walks"), Event(10, 20, "a man sits")]
    good = [Event(0, 10, "a man walks"), Event(10, 20, "a man sits")]
    poor = [Event(50, 60, "a dog barks")]
    (one,) = soda_c_official([pred], [[poor, good]])
    assert one["f"] == pytest.approx(1.0, abs=1e-6)  # identical captions: METEOR 1 either way round
    (alone,) = soda_c_official([pred], [[poor]])
    assert alone == {"precision": 0.0, "recall": 0.0, "f": 0.0}
    assert soda_c_official([[]], [[good]]) == [{"precision": 0.0, "recall": 0.0, "f": 0.0}]


def test_official_meteor_is_scored_with_arguments_swapped():
    pred = [Event(0, 10, "a man is walking down the street with his dog")]
    gt = [Event(0, 10, "a man walks")]
    (official,) = soda_c_official([pred], [[gt]])
    straight = soda_c(pred, gt, "meteor")  # hypothesis = prediction
    swapped = soda_c(gt, pred, "meteor")  # hypothesis = ground truth, as the official code
    assert official["f"] == pytest.approx(swapped, abs=1e-3) and abs(straight - swapped) > 0.05


def test_metrics_official_option_uses_reference_events():
    samples = [Sample("v", "v.mp4", 60.0, "dense_caption", "q", events=[Event(50, 60, "a dog barks")],
                      reference_events=[[Event(0, 10, "a man walks")]])]
    completion = "<answer>0 - 10 seconds: a man walks</answer>"
    official = evaluate_completions([completion], samples, dense="official", caption_scorers=())
    paper = evaluate_completions([completion], samples, caption_scorers=())
    assert official["dense_caption/SODA_c"] == pytest.approx(1.0, abs=1e-6)
    assert paper["dense_caption/SODA_c"] == 0.0  # the paper option scores `events` only
    with pytest.raises(ValueError, match="allowed: \\['rlvid', 'official'\\]"):
        dense_caption_metrics([completion], [samples[0].events], dense="fujiso",
                              caption_scorers=(), soda_scorer=FunctionScorer(lambda h, r: 1.0))


def test_sample_round_trips_reference_events():
    raw = {"id": "v", "video": "v.mp4", "duration": 60.0, "task": "dense_caption", "question": "q",
           "events": [{"start": 0, "end": 5, "caption": "x"}],
           "reference_events": [[{"start": 1, "end": 6, "caption": "y"}]]}
    sample = Sample.from_dict(raw)
    assert sample.reference_events == [[Event(1.0, 6.0, "y")]]
    assert Sample.from_dict(sample.to_dict()) == sample
    assert "reference_events" not in Sample.from_dict({**raw, "reference_events": None}).to_dict()
    with pytest.raises(ValueError, match="reference_events\\[0\\]\\[0\\]' is missing 'caption'"):
        Sample.from_dict({**raw, "reference_events": [[{"start": 1, "end": 6}]]})


def test_official_caption_metrics_pair_with_every_reference_list():
    from rewards.densevid_official import caption_metrics_official, localization_official

    pred = [Event(0, 10, "a man walks"), Event(40, 50, "a dog barks")]
    val_1 = [Event(0, 10, "a man walks")]
    val_2 = [Event(40, 50, "a dog barks")]
    both = caption_metrics_official([pred], [[val_1, val_2]], ("meteor",), tious=(0.5,))["meteor"][0]
    one = caption_metrics_official([pred], [[val_1]], ("meteor",), tious=(0.5,))["meteor"][0]
    assert both == pytest.approx(1.0, abs=1e-6) and one < 0.7  # the dog is unmatched against val_1 alone
    assert caption_metrics_official([[]], [[val_1]], ("meteor",))["meteor"] == [0.0]
    # precision and recall: each the best over the lists (hits need IoU > tIoU)
    assert localization_official(pred, [val_1, val_2], tious=(0.5,)) == (0.5, 1.0)
    assert localization_official(pred, [val_1 + val_2], tious=(0.5,)) == (1.0, 1.0)
