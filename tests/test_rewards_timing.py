"""The streaming rewards: timing (due window, decay, early and spurious penalties) and content."""

import math

import pytest

from rewards import compose_rewards, score
from rewards.timing import match_responses, stream_content_reward, stream_timing_reward
from rlvid.data.sample import Sample, StreamEvent
from rlvid.data.stream_transcript import StreamResponse

ONE = [StreamEvent(3.0, "red circle")]
TWO = [StreamEvent(1.0, "blue"), StreamEvent(4.0, "red")]


@pytest.mark.parametrize("transcript, expected", [
    ("<t=4.0s> red circle", 1.0),                      # within [due, due + 1]
    ("<t=3.0s> red circle", -0.5),                     # at the due time: said before it could be seen
    ("<t=3.5s> red circle", 1.0),
    ("<t=6.0s> red circle", pytest.approx(0.1353, abs=1e-4)),  # 2 s late: exp(-2)
    ("", 0.0),                                          # silent throughout
    ("<t=2.0s> red circle", -0.5),                      # early only
    ("<t=2.0s> x\n<t=4.0s> red circle", 0.5),           # early then on time
    ("<t=4.0s> red circle\n<t=5.0s> red circle", 0.5),  # on time then a repeat
])
def test_stream_timing_one_event(transcript, expected):
    assert stream_timing_reward([transcript], stream_events=[ONE])[0] == expected


def test_stream_timing_several_events_and_non_streaming_samples():
    on_time = "<t=2.0s> blue\n<t=5.0s> red"
    assert stream_timing_reward([on_time, "<t=5.0s> red", on_time], stream_events=[TWO, TWO, None]) == [1.0, 0.5, None]
    with pytest.raises(ValueError, match="must be >= 0"):
        stream_timing_reward(["x"], stream_events=[ONE], tolerance=-1)


def test_miss_penalty_makes_silence_and_spamming_both_score_low():
    spam = "\n".join(f"<t={t}.0s> red circle" for t in range(1, 9))  # a response after every chunk of 8
    kw = {"stream_events": [ONE, ONE, ONE], "miss_penalty": 0.5}
    silent, spamming, on_time = stream_timing_reward(["", spam, "<t=4.0s> red circle"], **kw)
    assert silent == -0.5 and on_time == 1.0
    assert spamming == 1.0 - 0.5 * 3 - 0.5 * 4  # 3 early (t <= 3), 1 on time, 4 repeats
    assert stream_timing_reward(["<t=2.0s> x"], **{**kw, "stream_events": [ONE]}) == [-1.0]  # early and missed


def test_match_belongs_to_the_latest_due_event():
    m = match_responses([StreamResponse(5.0, "a"), StreamResponse(0.5, "b"), StreamResponse(6.0, "c")], TWO)
    assert [r and r.text for r in m.answered] == [None, "a"]
    assert [r.text for r in m.early] == ["b"] and [r.text for r in m.spurious] == ["c"]


def test_stream_content_scores_the_matched_responses():
    texts = ["<t=2.0s> blue\n<t=5.0s> green", "<t=0.5s> blue"]
    assert stream_content_reward(texts, stream_events=[TWO, TWO]) == [0.5, 0.0]
    with pytest.raises(ValueError, match="option 'metric'"):
        stream_content_reward(texts, stream_events=[TWO, TWO], metric="bleu")


def test_timed_content_scales_a_late_answer_by_its_timing_credit():
    texts = ["<t=4.5s> red circle", "<t=6.0s> red circle"]  # due 3.0: on time (1.5 <= 2), then 1 s late
    untimed = stream_content_reward(texts, stream_events=[ONE, ONE])
    timed = stream_content_reward(texts, stream_events=[ONE, ONE], timed=True, tolerance=2.0, decay=1.0)
    assert untimed == [1.0, 1.0]
    assert timed == [1.0, pytest.approx(math.exp(-1.0))]


def test_builtins_from_a_recipe_spec_see_the_sample_column():
    sample = Sample("s", "s.mp4", 8.0, "open_qa", "Tell me when the red circle appears.", answer="red circle",
                    stream_events=ONE)
    rewards = compose_rewards([{"name": "stream_timing", "kwargs": {"tolerance": 0.5}},
                               {"name": "stream_content", "weight": 0.5}])
    out = score(rewards, [sample, sample], ["<t=3.5s> red circle", "<t=4.0s> blue"])
    assert out.scores["stream_timing"] == [1.0, pytest.approx(0.6065, abs=1e-4)]
    assert out.scores["stream_content"] == [1.0, 0.0]
    assert out.total == [1.5, pytest.approx(0.6065, abs=1e-4)]
