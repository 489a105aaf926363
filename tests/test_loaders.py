"""Loaders: every bad record fails with its file and line (or dataset row), or is skipped and counted."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from corrupt_videos import make_corrupt_videos

from rlvid.data.loaders import DataError, load_hf_dataset, load_jsonl, load_samples, write_jsonl
from rlvid.data.sample import Sample


def _good(i: int = 0, **changes) -> dict:
    raw = {
        "id": f"s{i}",
        "video": "videos/clip.mp4",
        "duration": 10.0,
        "task": "temporal_grounding",
        "question": "When is the red circle visible?",
        "intervals": [[1.0, 4.0]],
    }
    raw.update(changes)
    return raw


def _without(key: str) -> dict:
    raw = _good(1)
    del raw[key]
    return raw


def _write(path: Path, lines: list[dict | str]) -> Path:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ('{"id": "s1", "video": ', "invalid JSON"),
        (_without("question"), "missing required field 'question'"),
        (_good(1, duration="ten"), "field 'duration' must be a number"),
        (_good(1, id=7), "field 'id' must be a string"),
        (_good(1, intervals=[[5.0, 2.0]]), "reversed"),
        (_good(1, intervals=[[2.0, 30.0]]), "outside the video"),
        (_good(1, task="captioning"), "field 'task' is 'captioning'"),
        (_good(1, answer_text="x"), "unknown field(s) ['answer_text']"),
        (_good(0), "duplicate id 's0'"),
    ],
)
def test_bad_line_names_file_and_line(tmp_path, bad_line, message):
    path = _write(tmp_path / "data.jsonl", [_good(0), bad_line, _good(2)])
    with pytest.raises(DataError) as err:
        load_jsonl(path)
    assert str(err.value).startswith(f"{path}:2: ")
    assert message in str(err.value)


def test_undecodable_bytes_name_the_line(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_bytes(json.dumps(_good(0)).encode() + b"\n\xff\xfe{}\n")
    with pytest.raises(DataError, match=rf"^{path}:2: not UTF-8"):
        load_jsonl(path)


@pytest.mark.parametrize("kind", ["missing", "empty", "truncated", "not_video"])
def test_check_videos_names_line_and_video(tmp_path, kind):
    bad_video = make_corrupt_videos(tmp_path / "videos")[kind]
    path = _write(tmp_path / "data.jsonl", [_good(1, video=f"videos/{bad_video.name}")])
    with pytest.raises(DataError) as err:
        load_jsonl(path, check_videos=True)
    message = str(err.value)
    assert message.startswith(f"{path}:1: video ")
    assert str(bad_video) in message
    if kind == "missing":
        assert "not found" in message
    if kind == "empty":
        assert "empty" in message
    # without the check the same file loads: the probe is what caught it
    assert len(load_jsonl(path).samples) == 1


def test_check_videos_accepts_real_videos(synthetic_dir):
    result = load_jsonl(synthetic_dir / "val.jsonl", check_videos=True)
    assert len(result.samples) == 2 and result.num_skipped == 0


def test_skip_bad_samples_counts_and_logs(tmp_path, caplog):
    bad_video = make_corrupt_videos(tmp_path / "videos")["empty"]
    lines = [
        _good(0),
        "{not json",
        _good(2, task="captioning"),
        "",
        _good(4, intervals=[[3.0, 1.0]]),
        _good(5, video=f"videos/{bad_video.name}"),
        _good(6, video="videos/truncated.mp4"),
    ]
    path = _write(tmp_path / "data.jsonl", lines)
    with caplog.at_level(logging.WARNING, logger="rlvid.data"):
        result = load_jsonl(path, skip_bad_samples=True, check_videos=True)
    assert [s.id for s in result.samples] == []  # every video in this file is broken or missing
    assert result.num_skipped == 6
    assert [m.split(": ")[0] for m in result.skipped] == [f"{path}:{n}" for n in (1, 2, 3, 5, 6, 7)]
    (record,) = [r for r in caplog.records if r.name == "rlvid.data"]
    assert record.levelno == logging.WARNING
    assert "skipped 6 bad sample(s), kept 0" in record.getMessage()
    assert f"{path}:1: video" in record.getMessage()


def test_skip_bad_samples_keeps_the_good_ones(tmp_path, caplog, synthetic_dir):
    video = str((synthetic_dir / "videos" / "val-00000.mp4").absolute())
    path = _write(tmp_path / "data.jsonl", [_good(0, video=video), _good(1, duration=-3), _good(2, video=video)])
    with caplog.at_level(logging.WARNING, logger="rlvid.data"):
        result = load_jsonl(path, skip_bad_samples=True, check_videos=True)
    assert [s.id for s in result] == ["s0", "s2"]
    assert result.skipped == [f"{path}:2: field 'duration' must be > 0, got -3.0"]
    assert "skipped 1 bad sample(s), kept 2" in caplog.text


def test_relative_videos_resolve_against_the_jsonl_folder(tmp_path, monkeypatch):
    sub = tmp_path / "annotations"
    sub.mkdir()
    path = _write(sub / "data.jsonl", [_good(0), _good(1, video="/abs/clip.mp4"), _good(2, video="../v/c.mp4")])
    monkeypatch.chdir(tmp_path)
    samples = load_jsonl(Path("annotations/data.jsonl")).samples
    assert [s.video for s in samples] == [str(sub / "videos/clip.mp4"), "/abs/clip.mp4", str(tmp_path / "v/c.mp4")]
    assert path.exists()


def test_missing_file_and_blank_lines(tmp_path):
    with pytest.raises(DataError, match="annotation file not found"):
        load_jsonl(tmp_path / "nope.jsonl")
    path = _write(tmp_path / "data.jsonl", ["", _good(0), "   ", _good(1)])
    assert [s.id for s in load_jsonl(path)] == ["s0", "s1"]


def test_write_then_load_round_trips(tmp_path):
    samples = [Sample.from_dict(_good(i, video=f"/data/{i}.mp4")) for i in range(3)]
    path = write_jsonl(samples, tmp_path / "out" / "data.jsonl")
    assert load_jsonl(path).samples == samples


# --- datasets -----------------------------------------------------------------------------------------------


def _rows() -> list[dict]:
    return [
        {"id": "a", "video": "videos/a.mp4", "duration": 8.0, "task": "mcq", "query": "What colour?",
         "options": ["red", "blue"], "answer": "A", "source": "demo"},
        {"id": "b", "video": "videos/b.mp4", "duration": 8.0, "task": "mcq", "query": "What shape?",
         "options": ["circle", "square"], "answer": "C", "source": "demo"},
        {"id": "c", "video": "/abs/c.mp4", "duration": 5.0, "task": "mcq", "query": "How many?",
         "options": ["1", "2"], "answer": "B", "source": "demo"},
    ]


def test_hf_parquet_maps_columns_and_names_bad_rows(tmp_path, caplog):
    import datasets

    path = tmp_path / "data.parquet"
    datasets.Dataset.from_list(_rows()).to_parquet(str(path))
    with pytest.raises(DataError, match=rf"^{path}\[train\] row 1: field 'answer' must be one of \['A', 'B'\]"):
        load_hf_dataset(path, "train", column_map={"query": "question"})
    with caplog.at_level(logging.WARNING, logger="rlvid.data"):
        result = load_hf_dataset(path, "train", column_map={"query": "question"}, skip_bad_samples=True)
    assert [s.id for s in result] == ["a", "c"]
    assert result.samples[0].question == "What colour?"
    assert result.samples[0].meta == {"source": "demo"}  # extra columns are kept under meta
    assert result.samples[0].video == str(tmp_path / "videos/a.mp4")
    assert result.samples[1].video == "/abs/c.mp4"
    assert result.num_skipped == 1 and "skipped 1 bad sample(s)" in caplog.text
    # without the mapping the question is missing
    with pytest.raises(DataError, match=r"row 0: missing required field 'question'"):
        load_hf_dataset(path, "train")


def test_hf_saved_dataset_dict_and_load_samples_dispatch(tmp_path, synthetic_dir):
    import datasets

    rows = [{**r, "question": r.pop("query")} for r in _rows() if r["id"] != "b"]
    saved = tmp_path / "saved"
    datasets.DatasetDict({"validation": datasets.Dataset.from_list(rows)}).save_to_disk(str(saved))
    result = load_samples(saved, split="validation")
    assert [s.id for s in result] == ["a", "c"]
    assert result.samples[0].video == str(saved / "videos/a.mp4")
    with pytest.raises(DataError, match=r"no split 'train'; available: \['validation'\]"):
        load_samples(saved, split="train")
    jsonl = load_samples(synthetic_dir / "test.jsonl")
    assert [s.id for s in jsonl] == ["test-00000", "test-00001"]
    with pytest.raises(DataError, match="column_map applies to datasets only"):
        load_samples(synthetic_dir / "test.jsonl", column_map={"q": "question"})
