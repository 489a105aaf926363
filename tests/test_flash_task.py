"""The pixel-decided grounding task (issue 17): flash clips, the constant-answer baseline, control copies."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from rlvid.data.loaders import load_jsonl
from rlvid.data.sample import Sample
from rlvid.data.synthetic import BACKGROUND, FLASH_FRAMES, PALETTE, SYNTHETIC_TASKS, make_synthetic_data
from rlvid.data.video_controls import write_control_set
from rlvid.eval.constant_baseline import best_constant_interval, constant_miou


def _frames(path: str | Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def _lit(frames: list[np.ndarray], colour: str) -> list[int]:
    """Frames whose pixels are (nearly) all the colour."""
    return [i for i, f in enumerate(frames)
            if np.all(np.abs(f.astype(int) - PALETTE[colour]) <= 48, axis=-1).mean() > 0.95]


@pytest.fixture(scope="module")
def flash_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_synthetic_data(tmp_path_factory.mktemp("flash"), n=12, seed=3, duration=6.0, fps=2, width=64,
                               height=48, splits=(0.5, 0.5, 0.0), tasks=("flash_grounding",))


def test_flash_clip_lights_the_whole_screen_exactly_over_its_interval(flash_dir):
    starts = set()
    for s in load_jsonl(flash_dir / "train.jsonl").samples + load_jsonl(flash_dir / "val.jsonl").samples:
        assert s.task == "temporal_grounding" and s.duration == 6.0
        colour = s.meta["colour"]
        assert colour in s.question
        (start, end), = s.intervals
        assert end - start == FLASH_FRAMES / 2
        assert round(start * 2) % FLASH_FRAMES == 0  # on a temporal-patch boundary
        frames = _frames(s.video)
        assert _lit(frames, colour) == list(range(round(start * 2), round(end * 2)))
        dark = [i for i, f in enumerate(frames) if np.abs(f.astype(int) - BACKGROUND).max() <= 24]
        assert len(dark) == len(frames) - FLASH_FRAMES
        starts.add(start)
    assert len(starts) >= 3  # the time varies from clip to clip


def test_flash_task_is_opt_in(tmp_path):
    assert "flash_grounding" not in SYNTHETIC_TASKS  # the default mix is unchanged
    with pytest.raises(ValueError, match="allowed: .*'flash_grounding'"):
        make_synthetic_data(tmp_path, n=1, tasks=("flash",))


def _grounding(start: float, end: float, duration: float = 10.0) -> Sample:
    return Sample(id=f"s{start}", video="v.mp4", duration=duration, task="temporal_grounding", question="q",
                  intervals=[(start, end)])


def test_best_constant_interval_finds_the_most_common_interval_and_scores_held_out():
    samples = [_grounding(2.0, 4.0)] * 3 + [_grounding(6.0, 8.0)]
    interval, miou = best_constant_interval(samples)
    assert interval == (2.0, 4.0) and miou == pytest.approx(0.75)
    assert constant_miou((6.0, 8.0), samples) == pytest.approx(0.25)
    # a wider constant overlaps more clips but with a lower IoU each: (2, 8) scores 1/3 on all four
    assert constant_miou((2.0, 8.0), samples) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="no temporal-grounding samples"):
        best_constant_interval([])


def test_control_copies_keep_labels_and_remove_or_move_the_signal(flash_dir, tmp_path):
    original = load_jsonl(flash_dir / "val.jsonl").samples
    blank = load_jsonl(write_control_set(flash_dir / "val.jsonl", tmp_path / "blank", "blank")).samples
    shuffled = load_jsonl(write_control_set(flash_dir / "val.jsonl", tmp_path / "shuffled", "shuffled")).samples
    assert [s.intervals for s in blank] == [s.intervals for s in shuffled] == [s.intervals for s in original]
    moved = 0
    for o, b, s in zip(original, blank, shuffled, strict=True):
        colour = o.meta["colour"]
        assert _lit(_frames(b.video), colour) == []
        lit_before, lit_after = _lit(_frames(o.video), colour), _lit(_frames(s.video), colour)
        assert len(lit_after) == FLASH_FRAMES
        moved += lit_after != lit_before
    assert moved >= len(original) // 2  # most flashes land elsewhere (a block can map to itself)
    with pytest.raises(ValueError, match="unknown control"):
        write_control_set(flash_dir / "val.jsonl", tmp_path / "x", "mirror")
