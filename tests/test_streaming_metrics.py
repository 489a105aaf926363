"""Streaming metrics: timing precision / recall / F1 within tolerance, delay, content; in evaluate_completions."""

import math

import pytest

from rlvid.data.sample import Sample, StreamEvent
from rlvid.eval.metrics import evaluate_completions
from rlvid.eval.streaming_metrics import streaming_metrics


def _s(events, sid="s"):
    return Sample(sid, "s.mp4", 8.0, "open_qa", "q", answer="x", stream_events=[StreamEvent(*e) for e in events])


def test_counts_on_time_late_early_and_content():
    samples = [_s([(3.0, "red circle")]), _s([(1.0, "blue"), (4.0, "red")]), _s([(2.0, "green")])]
    texts = ["<t=4.0s> red circle",              # on time, right
             "<t=0.5s> blue\n<t=2.0s> blue\n<t=7.0s> red",  # early, on time, 3 s late
             ""]                                  # silent
    m = streaming_metrics(texts, samples, tolerance=1.0)
    assert m["timing_precision"] == pytest.approx(2 / 4)
    assert m["timing_recall"] == pytest.approx(2 / 4)
    assert m["timing_f1"] == pytest.approx(0.5)
    assert m["mean_delay"] == pytest.approx((1.0 + 1.0 + 3.0) / 3)
    assert m["content"] == pytest.approx(2 / 4)
    assert m["silent_fraction"] == pytest.approx(1 / 3)
    assert math.isnan(streaming_metrics([""], [samples[0]])["mean_delay"])


def test_bad_input():
    with pytest.raises(ValueError, match="no stream_events"):
        streaming_metrics(["x"], [Sample("a", "a.mp4", 8.0, "open_qa", "q", answer="x")])
    with pytest.raises(ValueError, match="1 transcripts for 2 samples"):
        streaming_metrics(["x"], [_s([(1.0, "a")])] * 2)


def test_evaluate_completions_reports_streams_apart():
    plain = Sample("p", "p.mp4", 8.0, "open_qa", "q", answer="yes")
    out = evaluate_completions(["<t=4.0s> red circle", "yes"], [_s([(3.0, "red circle")]), plain])
    assert out["stream/timing_f1"] == 1.0 and out["stream/count"] == 1.0
    assert out["open_qa/count"] == 1.0 and out["open_qa/accuracy"] == 1.0
