"""Timestamped streaming input: chunks with their start times in text, several videos per prompt end to end."""

from __future__ import annotations

import re

import pytest
import torch
from transformers import AutoProcessor

from rlvid.data.loaders import load_samples
from rlvid.data.model_inputs import VideoInputBuilder, sampling_for_processor
from rlvid.data.streaming import chunk_video
from rlvid.data.token_drop import TokenDrop
from rlvid.models.tiny import make_tiny_model
from rlvid.policy.encode import collate, encode_prompts


@pytest.fixture(scope="module")
def processors(tmp_path_factory):
    root = tmp_path_factory.mktemp("stream_models")
    return {arch: AutoProcessor.from_pretrained(make_tiny_model(root / arch, arch))
            for arch in ("qwen2_5_vl", "qwen3_vl")}


@pytest.fixture(scope="module")
def samples(synthetic_dir):
    rows = load_samples(str(synthetic_dir / "train.jsonl"), split="train").samples
    return [s for s in rows if s.task == "temporal_grounding"][:2]


def builder(processor, streaming=True, drop=None):
    sampling = sampling_for_processor(processor, fps=2.0, min_frames=12, max_frames=12, total_pixels=12 * 3136,
                                      min_pixels=3136, max_pixels=3136, drop=drop or TokenDrop())
    return VideoInputBuilder(processor, sampling, streaming=streaming, stream_chunk_seconds=2.0)


def test_chunks_are_whole_pairs_grouped_by_time_window(processors, samples):
    b = builder(processors["qwen2_5_vl"])
    video = b.video(samples[0])
    chunks = chunk_video(video, 2.0, 2)
    assert sum(len(c.indices) for c in chunks) == len(video.indices)
    assert all(len(c.indices) % 2 == 0 for c in chunks)
    windows = [int(c.timestamps[0] // 2.0) for c in chunks]
    assert windows == sorted(set(windows))
    for c in chunks:  # every pair of a chunk starts in the chunk's window
        assert {int(c.timestamps[i] // 2.0) for i in range(0, len(c.indices), 2)} == {int(c.timestamps[0] // 2.0)}
    # each chunk's sampled fps is the clip's sampling rate, so Qwen2.5-VL's temporal spacing is unchanged
    assert chunks[0].metadata().sampled_fps == pytest.approx(video.metadata().sampled_fps, rel=0.15)


def test_qwen2_5_prompt_interleaves_time_labels_and_chunks(processors, samples):
    b = builder(processors["qwen2_5_vl"])
    video = b.video(samples[0])
    chunks = chunk_video(video, 2.0, 2)
    text = b.prompt_text(samples[0])
    labels = re.findall(r"<t=([0-9.]+)s><\|vision_start\|><\|video_pad\|><\|vision_end\|>", text)
    assert [float(x) for x in labels] == [round(c.timestamps[0], 1) for c in chunks]
    inputs = b.prompts(samples).inputs
    assert inputs["video_grid_thw"].shape[0] == sum(len(chunk_video(b.video(s), 2.0, 2)) for s in samples)
    assert inputs["video_grid_thw"][:, 0].sum() * 2 == sum(len(b.video(s).indices) for s in samples)


def test_qwen3_streaming_is_native_and_leaves_the_prompt_unchanged(processors, samples):
    streamed, plain = builder(processors["qwen3_vl"]), builder(processors["qwen3_vl"], streaming=False)
    assert not streamed.streams
    assert streamed.prompt_text(samples[0]) == plain.prompt_text(samples[0])
    assert "<t=" not in streamed.prompt_text(samples[0])


def test_several_videos_per_prompt_split_per_prompt_and_collate_like_the_builder(processors, samples):
    b = builder(processors["qwen2_5_vl"], drop=TokenDrop("patch", 0.05, 4))
    tok = b.processor.tokenizer
    completions = ["<answer>1.0 to 2.0</answer>", "<answer>3.5 to 6.0</answer>"]
    expected, expected_mask = b.prompt_with_completions(samples, completions, eos=False)
    encoded = encode_prompts(b, samples)
    for e, s in zip(encoded, samples, strict=True):
        assert e.visual["video_grid_thw"].shape[0] == len(chunk_video(b.video(s), 2.0, 2))
    ids = [tok(c, add_special_tokens=False)["input_ids"] for c in completions]
    got, mask = collate(encoded, ids, tok.pad_token_id)
    assert torch.equal(mask, expected_mask)
    for key in ("input_ids", "attention_mask", "pixel_values_videos", "video_grid_thw", "second_per_grid_ts"):
        assert torch.equal(got[key], expected[key]), key
