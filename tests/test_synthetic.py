"""Synthetic data: deterministic for a seed, and every label can be read back from the decoded pixels."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
from corrupt_videos import make_corrupt_videos

from rlvid.data.loaders import load_jsonl
from rlvid.data.sample import OPTION_LETTERS, Sample
from rlvid.data.synthetic import PALETTE, SYNTHETIC_TASKS, make_synthetic_data
from rlvid.data.video import VideoError, probe_video

# At 128x96 a shape is 21 px wide: a triangle covers ~220 px, a circle ~350, a square 441.
PRESENT_PX = 60
ABSENT_PX = 8


def _frames(path: str | Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def _colour_mask(frame: np.ndarray, colour: str, tol: int = 48) -> np.ndarray:
    return np.all(np.abs(frame.astype(int) - PALETTE[colour]) <= tol, axis=-1)


def _samples(folder: Path, split: str = "train") -> list[Sample]:
    return load_jsonl(folder / f"{split}.jsonl").samples


def _frame_of(seconds: float, fps: float) -> int:
    return round(seconds * fps)


def _assert_visible_exactly(video: str, colour: str, start: float, end: float, fps: float) -> list[np.ndarray]:
    """The colour is on screen inside [start, end) and nowhere else, give or take one frame at each edge."""
    frames = _frames(video)
    first, stop = _frame_of(start, fps), _frame_of(end, fps)
    counts = [int(_colour_mask(f, colour).sum()) for f in frames]
    for i, count in enumerate(counts):
        if first + 1 <= i < stop - 1:
            assert count >= PRESENT_PX, f"{video}: {colour} missing at frame {i} inside [{start}, {end})"
        elif i < first - 1 or i > stop:
            assert count <= ABSENT_PX, f"{video}: {colour} seen at frame {i} outside [{start}, {end})"
    return frames


def _centroid(frame: np.ndarray, colour: str) -> np.ndarray:
    ys, xs = np.nonzero(_colour_mask(frame, colour))
    return np.array([xs.mean(), ys.mean()])


def _fill_ratio(frame: np.ndarray, colour: str) -> float:
    """Pixels of the colour over its bounding box: square ~1, circle ~0.79, triangle ~0.5."""
    ys, xs = np.nonzero(_colour_mask(frame, colour))
    return len(xs) / ((np.ptp(xs) + 1) * (np.ptp(ys) + 1))


def test_same_seed_gives_identical_annotations_and_videos(tmp_path):
    kwargs = {"n": 8, "seed": 3, "duration": 3.0}
    a, b = make_synthetic_data(tmp_path / "a", **kwargs), make_synthetic_data(tmp_path / "b", **kwargs)
    for name in ("train.jsonl", "val.jsonl", "test.jsonl", "dataset_info.json"):
        assert (a / name).read_text() == (b / name).read_text()
    videos = sorted(p.name for p in (a / "videos").iterdir())
    assert len(videos) == 8
    for name in videos:
        assert (a / "videos" / name).read_bytes() == (b / "videos" / name).read_bytes()
        np.testing.assert_array_equal(np.stack(_frames(a / "videos" / name)), np.stack(_frames(b / "videos" / name)))
    other = make_synthetic_data(tmp_path / "c", n=8, seed=4, duration=3.0)
    assert (other / "train.jsonl").read_text() != (a / "train.jsonl").read_text()


def test_splits_ids_and_one_video_per_sample(synthetic_dir):
    splits = ("train", "val", "test")
    loaded = {split: load_jsonl(synthetic_dir / f"{split}.jsonl", check_videos=True) for split in splits}
    assert {split: len(r.samples) for split, r in loaded.items()} == {"train": 20, "val": 2, "test": 2}
    samples = [s for r in loaded.values() for s in r.samples]
    assert len({s.id for s in samples}) == 24
    assert len({s.video for s in samples}) == 24
    for s in samples:
        assert Path(s.video) == (synthetic_dir / "videos" / f"{s.id}.mp4").absolute()
        assert 6.0 <= s.duration <= 10.0
    train_tasks = [s.task for s in loaded["train"].samples]
    assert {t: train_tasks.count(t) for t in SYNTHETIC_TASKS} == dict.fromkeys(SYNTHETIC_TASKS, 5)
    info = json.loads((synthetic_dir / "dataset_info.json").read_text())
    assert info["args"]["n"] == 24 and info["args"]["seed"] == 0 and info["counts"]["train"] == 20


def test_grounding_target_is_on_screen_exactly_over_its_interval(synthetic_dir):
    grounding = [s for s in _samples(synthetic_dir) if s.task == "temporal_grounding"]
    assert len(grounding) == 5
    for s in grounding:
        (start, end), = s.intervals
        assert s.meta["colour"] in s.question and s.meta["shape"] in s.question
        _assert_visible_exactly(s.video, s.meta["colour"], start, end, fps=8)


def test_grounded_qa_answer_and_interval_come_from_the_moving_shape(synthetic_dir):
    qa = [s for s in _samples(synthetic_dir) if s.task == "grounded_qa"]
    assert len(qa) == 5
    for s in qa:
        colour, direction = s.meta["colour"], s.meta["direction"]
        assert s.answer == (colour if s.meta["question_type"] == "colour" else s.meta["shape"])
        assert direction in s.question
        (start, end), = s.intervals
        frames = _assert_visible_exactly(s.video, colour, start, end, fps=8)
        dx, dy = _centroid(frames[_frame_of(end, 8) - 1], colour) - _centroid(frames[_frame_of(start, 8)], colour)
        moved = {"left": -dx, "right": dx, "up": -dy, "down": dy}
        assert max(moved, key=moved.get) == direction


def test_mcq_letters_point_at_what_the_video_shows(tmp_path):
    folder = make_synthetic_data(tmp_path, n=12, seed=5, duration=4.0, tasks=["mcq"], splits=(1.0, 0.0, 0.0))
    samples = _samples(folder)
    assert len(samples) == 12 and {s.meta["question_type"] for s in samples} == {"colour", "shape", "direction",
                                                                                   "count"}
    for s in samples:
        assert len(s.options) == 4
        truth = s.options[OPTION_LETTERS.index(s.answer)]
        assert truth == s.meta["answer_text"]
        kind, objects = s.meta["question_type"], s.meta["objects"]
        if kind == "count":
            assert truth == str(len(objects))
            continue
        target = objects[0]
        frames = _frames(s.video)
        first, stop = _frame_of(target["start"], 8), _frame_of(target["end"], 8)
        colour = target["colour"]
        if kind == "colour":
            assert truth == colour and target["shape"] in s.question
            assert int(_colour_mask(frames[(first + stop) // 2], colour).sum()) >= PRESENT_PX
        elif kind == "shape":
            assert colour in s.question
            ratio = _fill_ratio(frames[(first + stop) // 2], colour)
            drawn = "square" if ratio > 0.9 else "circle" if ratio > 0.65 else "triangle"
            assert truth == drawn
        else:
            dx, dy = _centroid(frames[stop - 1], colour) - _centroid(frames[first], colour)
            moved = {"left": -dx, "right": dx, "up": -dy, "down": dy}
            assert truth == max(moved, key=moved.get)


def test_dense_caption_events_are_sorted_disjoint_and_drawn(synthetic_dir):
    dense = [s for s in _samples(synthetic_dir) if s.task == "dense_caption"]
    assert len(dense) == 5
    for s in dense:
        assert 2 <= len(s.events) <= 4
        for before, after in zip(s.events, s.events[1:], strict=False):
            assert before.end <= after.start
        frames = _frames(s.video)
        for event in s.events:
            colour = event.caption.split()[1]
            middle = frames[_frame_of((event.start + event.end) / 2, 8)]
            assert int(_colour_mask(middle, colour).sum()) >= PRESENT_PX, event


def test_options_set_fps_resolution_and_fixed_duration(tmp_path):
    folder = make_synthetic_data(tmp_path, n=1, seed=0, duration=2.0, fps=10, width=64, height=48,
                                 tasks=["temporal_grounding"])
    (s,) = _samples(folder)
    info = probe_video(s.video)
    assert (info.fps, info.num_frames, info.width, info.height) == (10.0, 20, 64, 48)
    assert s.duration == pytest.approx(info.duration) == pytest.approx(2.0)
    with av.open(s.video) as container:
        times = [frame.time for frame in container.decode(video=0)]
    assert times == pytest.approx([i / 10 for i in range(20)])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"width": 127}, "even"),
        ({"tasks": ["captioning"]}, "unknown synthetic task"),
        ({"splits": (0.5, 0.1, 0.1)}, "summing to 1"),
        ({"duration": (5.0, 2.0)}, "duration"),
        ({"width": 16, "height": 16}, "too small"),
    ],
)
def test_bad_arguments_are_refused(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_synthetic_data(tmp_path, n=2, **kwargs)


def test_corrupt_videos_are_really_broken(tmp_path):
    paths = make_corrupt_videos(tmp_path)
    assert set(paths) == {"missing", "empty", "truncated", "not_video"}
    assert not paths["missing"].exists()
    assert paths["empty"].stat().st_size == 0
    assert paths["truncated"].stat().st_size > 0
    assert paths["not_video"].read_text().startswith("This is a text file")
    for path in paths.values():
        with pytest.raises(VideoError, match=path.name):
            probe_video(path)


def test_grain_raises_the_bitrate_and_stays_deterministic(tmp_path):
    kwargs = {"n": 1, "seed": 1, "duration": 1.0, "tasks": ["temporal_grounding"]}
    flat = make_synthetic_data(tmp_path / "flat", **kwargs) / "videos" / "train-00000.mp4"
    grain = [make_synthetic_data(tmp_path / d, noise=8.0, **kwargs) / "videos" / "train-00000.mp4" for d in "ab"]
    assert grain[0].read_bytes() == grain[1].read_bytes()
    assert grain[0].stat().st_size > 5 * flat.stat().st_size
    assert json.loads((tmp_path / "a" / "dataset_info.json").read_text())["args"]["noise"] == 8.0
