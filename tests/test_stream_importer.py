"""Dense captions become `stream_events` (VideoLLM-online's conversion): each caption due at its event's end."""

from __future__ import annotations

import json

from rlvid.data.importers import import_dataset
from rlvid.data.importers.stream_narration import NARRATION_QUESTION, narration_events
from rlvid.data.loaders import load_jsonl, write_jsonl
from rlvid.eval.metrics import evaluate_completions

# hand-written, ActivityNet Captions layout: out of order, one event overshooting the video, two ending together
CAPTIONS = {
    "v_cook": {"duration": 30.0,
               "timestamps": [[12.0, 20.5], [0.0, 8.0], [20.5, 31.2], [5.0, 20.5]],
               "sentences": ["She stirs the pot.", "A woman chops onions.", "She serves the soup. ",
                             "The onions go into the pot."]},
}


def test_narration_events_are_due_at_each_events_end_and_join_events_ending_together():
    events = [{"start": 12.0, "end": 20.5, "caption": "b"}, {"start": 0.0, "end": 8.0, "caption": "a"},
              {"start": 5.0, "end": 20.5, "caption": "c"}]
    assert narration_events(events) == [{"due": 8.0, "content": "a"}, {"due": 20.5, "content": "c b"}]


def test_activitynet_captions_with_stream_events_adds_a_narration_sample(tmp_path):
    path = tmp_path / "val_1.json"
    path.write_text(json.dumps(CAPTIONS))
    plain = import_dataset("activitynet_captions", annotations=path, video_dir="videos")
    assert [s.id for s in plain] == ["v_cook"] and plain[0].stream_events is None  # off by default

    samples = import_dataset("activitynet_captions", annotations=path, video_dir="videos", with_stream_events=True)
    assert [(s.id, s.task) for s in samples] == [("v_cook", "dense_caption"), ("v_cook_stream", "dense_caption")]
    stream = samples[1]
    assert stream.question == NARRATION_QUESTION and stream.events == samples[0].events
    assert [(e.due, e.content) for e in stream.stream_events] == [
        (8.0, "A woman chops onions."), (20.5, "The onions go into the pot. She stirs the pot."),
        (30.0, "She serves the soup.")]  # the overshooting end is clipped to the video, like the event

    # the records round-trip through the loader, and a transcript on time scores as a streaming sample
    out = tmp_path / "stream.jsonl"
    write_jsonl(samples, out)
    again = load_jsonl(out).samples
    assert again[1].stream_events == stream.stream_events
    transcript = "<t=9.0s> A woman chops onions.\n<t=21.0s> The onions go into the pot. She stirs the pot."
    metrics = evaluate_completions([transcript], [again[1]])
    assert metrics["stream/timing_recall"] == 2 / 3 and metrics["stream/timing_precision"] == 1.0


def test_import_dataset_script_writes_the_narration_samples(tmp_path):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from import_dataset import main

    path = tmp_path / "val_1.json"
    path.write_text(json.dumps(CAPTIONS))
    out = tmp_path / "out" / "stream.jsonl"
    assert main(["activitynet_captions", "--annotations", str(path), "--video-dir", str(tmp_path / "videos"),
                 "--with-stream-events", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["v_cook", "v_cook_stream"] and rows[1]["stream_events"][0]["due"] == 8.0
