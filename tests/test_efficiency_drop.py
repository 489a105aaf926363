"""Redundant-frame dropping: which pairs are kept, true indices/timestamps, cache key, processor timestamps."""

from __future__ import annotations

import dataclasses
import re

import pytest
import torch

from rlvid.data.token_drop import TokenDrop, kept_frames
from rlvid.data.video import VideoSampling, decode_video
from rlvid.data.video_cache import VideoCache


def clip(n_frames: int = 16, size: int = 56) -> torch.Tensor:
    """Dark static frames; a 10x10 white square appears at frame 6 and moves 6 px a frame from frame 10."""
    frames = torch.full((n_frames, 3, size, size), 20, dtype=torch.uint8)
    for i in range(6, n_frames):
        x = 4 + (6 * (i - 10) if i >= 10 else 0)
        frames[i, :, 10:20, x:x + 10] = 255
    return frames


def test_static_pairs_are_dropped_and_changes_kept_in_whole_pairs():
    kept = kept_frames(clip(), TokenDrop("patch", 0.05, 2), frame_factor=2, patch=28)
    # pairs: 0 static | 1 static | 2 static | 3 (6,7) square appears | 4 (8,9) same | 5.. (10..15) moving
    assert kept == [0, 1, 6, 7, 10, 11, 12, 13, 14, 15]


def test_frame_mode_averages_a_small_object_away_patch_mode_does_not():
    frames = clip()
    assert kept_frames(frames, TokenDrop("frame", 0.05, 2), 2, 28) == [0, 1]
    assert len(kept_frames(frames, TokenDrop("patch", 0.05, 2), 2, 28)) == 10


def test_minimum_kept_adds_back_the_most_changed_pairs():
    kept = kept_frames(clip(), TokenDrop("frame", 0.05, 4), 2, 28)
    assert len(kept) == 4 and kept[:2] == [0, 1]
    assert kept[2:] in ([6, 7], [10, 11], [12, 13], [14, 15])
    assert kept_frames(clip(), TokenDrop("none", 0.05, 2), 2, 28) == list(range(16))


def test_bad_mode_is_refused():
    with pytest.raises(ValueError, match="token_drop.mode"):
        TokenDrop("tokens")


@pytest.fixture(scope="module")
def video(synthetic_dir):
    import json

    rows = [json.loads(line) for line in open(synthetic_dir / "train.jsonl")]
    row = next(r for r in rows if r["task"] == "temporal_grounding")
    return synthetic_dir / row["video"]


def test_decode_with_drop_keeps_true_indices_and_timestamps(video):
    base = VideoSampling(fps=8.0, min_frames=32, max_frames=32, total_pixels=32 * 3136, min_pixels=3136,
                         max_pixels=3136)
    full = decode_video(video, base)
    dropped = decode_video(video, dataclasses.replace(base, drop=TokenDrop("patch", 0.05, 4)))
    assert 4 <= len(dropped.indices) < len(full.indices) and len(dropped.indices) % 2 == 0
    assert dropped.dropped_frames == len(full.indices) - len(dropped.indices)
    position = {idx: i for i, idx in enumerate(full.indices)}
    for idx, t, frame in zip(dropped.indices, dropped.timestamps, dropped.frames, strict=True):
        assert t == full.timestamps[position[idx]]
        assert torch.equal(frame, full.frames[position[idx]])
    assert dropped.metadata().frames_indices == dropped.indices


def test_drop_is_part_of_the_cache_key(video):
    base = VideoSampling(fps=8.0, min_frames=32, max_frames=32, total_pixels=32 * 3136, min_pixels=3136,
                         max_pixels=3136)
    cache = VideoCache()
    a = cache.get(video, base)
    b = cache.get(video, dataclasses.replace(base, drop=TokenDrop("patch", 0.05, 4)))
    assert cache.stats.misses == 2 and len(b.indices) < len(a.indices)
    assert cache.get(video, dataclasses.replace(base, drop=TokenDrop("patch", 0.05, 4))) is b


def test_qwen3_processor_writes_the_true_times_of_kept_frames(video, tmp_path):
    from transformers import AutoProcessor

    from rlvid.data.model_inputs import sampling_for_processor
    from rlvid.models.tiny import make_tiny_model

    processor = AutoProcessor.from_pretrained(make_tiny_model(tmp_path / "q3", "qwen3_vl"))
    sampling = sampling_for_processor(processor, fps=8.0, min_frames=32, max_frames=32, total_pixels=32 * 4096,
                                      min_pixels=4096, max_pixels=4096, drop=TokenDrop("patch", 0.05, 4))
    v = decode_video(video, sampling)
    out = processor(text=["<|vision_start|><|video_pad|><|vision_end|>"], videos=[v.frames],
                    video_metadata=[v.metadata()], do_sample_frames=False, do_resize=False,
                    cap_pixels_per_frame=False, return_tensors="pt")
    text = processor.tokenizer.decode(out["input_ids"][0])
    written = [float(t) for t in re.findall(r"<([0-9.]+) seconds>", text)]
    expected = [(v.timestamps[i] + v.timestamps[i + 1]) / 2 for i in range(0, len(v.timestamps), 2)]
    assert written == pytest.approx([round(t, 1) for t in expected], abs=0.051)
    assert int(out["video_grid_thw"][0, 0]) == len(v.indices) // 2
