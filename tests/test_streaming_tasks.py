"""Streaming tasks: the `stream_events` field of the Sample schema and the synthetic generator."""

import numpy as np
import pytest

from rlvid.data.sample import Sample, SampleError, StreamEvent
from rlvid.data.stream_transcript import StreamResponse, format_transcript, parse_transcript
from rlvid.data.synthetic_streaming import COLOURS, make_stream_clips, write_streaming_data


def _raw(**extra):
    return {"id": "a", "video": "a.mp4", "duration": 8.0, "task": "open_qa", "question": "q", "answer": "x", **extra}


def test_stream_events_round_trip_and_absent_by_default():
    s = Sample.from_dict(_raw(stream_events=[{"due": 2.5, "content": "red circle"}]))
    assert s.stream_events == [StreamEvent(2.5, "red circle")]
    assert Sample.from_dict(s.to_dict()) == s
    assert "stream_events" not in Sample.from_dict(_raw()).to_dict()


@pytest.mark.parametrize("bad, needle", [
    ([], "non-empty"),
    ([{"due": 1.0}], "stream_events[0]"),
    ([{"due": 9.5, "content": "x"}], "outside the video"),
    ([{"due": "soon", "content": "x"}], "stream_events[0].due"),
])
def test_bad_stream_events_name_the_field(bad, needle):
    with pytest.raises(SampleError) as e:
        Sample.from_dict(_raw(stream_events=bad), where="s.jsonl:3")
    assert "s.jsonl:3" in str(e.value) and needle in str(e.value)


def test_alert_clip_shows_the_red_circle_from_its_due_time_on():
    for clip in make_stream_clips(5, ("alert",), seed=1):
        due = clip.sample.stream_events[0].due
        first = round(due * clip.fps)
        red = [(np.abs(f.astype(int) - COLOURS["red"]).sum(-1) < 30).any() for f in clip.frames]
        assert not any(red[:first]) and all(red[first:])
        assert due > 0 and due % 1.0 == 0  # on a chunk boundary, never in the first chunk


def test_kinds_are_deterministic_and_valid(tmp_path):
    clips = make_stream_clips(6, ("alert", "narration", "magqa"), seed=3)
    again = make_stream_clips(6, ("alert", "narration", "magqa"), seed=3)
    assert [c.sample for c in clips] == [c.sample for c in again]
    assert all(np.array_equal(a.frames, b.frames) for a, b in zip(clips, again, strict=True))
    narration, magqa = clips[1].sample, clips[2].sample
    assert [e.due for e in narration.stream_events] == [min(ev.end, 7.5) for ev in narration.events]
    assert len(magqa.stream_events) >= 2 and magqa.answer == magqa.stream_events[-1].content
    path = write_streaming_data(tmp_path, clips[:2])
    rows = [Sample.from_dict(__import__("json").loads(line)) for line in path.read_text().splitlines()]
    assert rows == [c.sample for c in clips[:2]] and (tmp_path / clips[0].sample.video).stat().st_size > 0


def test_bad_generator_arguments():
    with pytest.raises(ValueError, match="unknown streaming kind"):
        make_stream_clips(1, ("nope",))
    with pytest.raises(ValueError, match="whole number of frames"):
        make_stream_clips(1, chunk_seconds=0.75, fps=2.0)


def test_transcript_round_trip():
    rs = [StreamResponse(4.0, "red circle"), StreamResponse(6.0, "blue")]
    assert parse_transcript(format_transcript(rs)) == rs
    assert parse_transcript("no time here\n<t=1.0s> hi") == [StreamResponse(1.0, "hi")]
