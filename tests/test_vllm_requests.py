"""vLLM requests without vLLM: the install error, request payloads, processing parity with training, sampling."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from tiny_setup import make_tiny_setup, write_recipe
from vllm_fakes import decode_frames_url, hf_process

from rlvid.config import load_recipe
from rlvid.data.model_inputs import VideoInputBuilder
from rlvid.data.prompts import build_messages
from rlvid.data.recipe_data import load_split, make_input_builder
from rlvid.models.loading import load_policy, load_processor
from rlvid.policy import Policy
from rlvid.rollout import EngineNotAvailableError, SamplingParams, make_engine
from rlvid.rollout.vllm_requests import (
    LOGIT_SUPPRESS,
    media_io_kwargs,
    processor_kwargs,
    prompt_request,
    request_seed,
    sampling_kwargs,
    server_request,
)


@pytest.fixture(scope="module", params=["qwen2_5_vl", "qwen3_vl"])
def setup(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"vllm-req-{request.param}")
    s = make_tiny_setup(root, arch=request.param)
    recipe = load_recipe(write_recipe(root / "r.yaml", s, root / "run"))
    processor = load_processor(recipe.model.path)
    builder = make_input_builder(recipe, processor)
    return request.param, recipe, processor, builder, load_split(recipe, "train")[:2]


@pytest.mark.parametrize("engine", ["vllm", "vllm-server"])
def test_recipe_asking_for_vllm_without_it_names_the_extra(setup, engine, monkeypatch):
    _, recipe, processor, builder, _ = setup
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm -> ImportError, installed or not
    recipe.rollout.engine = engine
    try:
        with pytest.raises(EngineNotAvailableError, match=r"needs vLLM.*pip install 'rlvid\[vllm\]'"):
            make_engine(recipe, Policy(load_policy(recipe.model), builder))
    finally:
        recipe.rollout.engine = "hf"


def test_prompt_request_carries_the_decoded_frames_and_their_metadata(setup):
    _, _, processor, builder, samples = setup
    request = prompt_request(builder, samples[0])
    video = builder.video(samples[0])
    assert request["prompt"] == builder.prompt_text(samples[0])
    (frames, meta), = request["multi_modal_data"]["video"]
    assert frames.dtype == np.uint8 and frames.flags["C_CONTIGUOUS"]
    t, c, h, w = video.frames.shape
    assert frames.shape == (t, h, w, 3)  # THWC, as vLLM's video loaders return frames
    assert np.array_equal(frames, video.frames.permute(0, 2, 3, 1).numpy())
    assert meta["frames_indices"] == list(video.indices) and all(type(i) is int for i in meta["frames_indices"])
    assert meta["fps"] == video.info.fps and meta["total_num_frames"] == video.info.num_frames
    assert meta["duration"] == pytest.approx(video.info.duration)
    assert meta["do_sample_frames"] is False  # vLLM must not re-sample the frames rlvid chose
    assert request["mm_processor_kwargs"]["do_sample_frames"] is False
    assert request["mm_processor_kwargs"]["do_resize"] is False


def test_request_processed_like_vllm_gives_the_training_tokens_and_pixels(setup):
    """vLLM's Qwen processors run the HF processor on (frames, metadata, mm_processor_kwargs): same as training."""
    _, _, processor, builder, samples = setup
    for sample in samples:
        request = prompt_request(builder, sample)
        assert len(request["multi_modal_data"]["video"]) == 1
        out = hf_process(processor, request["prompt"], request["multi_modal_data"]["video"],
                         request["mm_processor_kwargs"])
        training = builder.prompts([sample]).inputs
        assert torch.equal(out["input_ids"], training["input_ids"])
        assert torch.equal(out["video_grid_thw"], training["video_grid_thw"])
        assert torch.equal(out["pixel_values_videos"], training["pixel_values_videos"])


def test_streamed_video_chunks_are_sent_as_one_video_each(setup):
    arch, _, processor, builder, samples = setup
    streaming = VideoInputBuilder(processor, builder.sampling, builder.cache, template=builder.template,
                                  reasoning=builder.reasoning, system=builder.system,
                                  streaming=True, stream_chunk_seconds=2.0)
    if arch == "qwen3_vl":  # its processor timestamps frames itself: the option leaves prompts unchanged
        assert not streaming.streams
        assert streaming.prompt_text(samples[0]) == builder.prompt_text(samples[0])
        return
    request = prompt_request(streaming, samples[0])
    videos = request["multi_modal_data"]["video"]
    assert len(videos) > 1 and request["prompt"].count("<|video_pad|>") == len(videos)
    out = hf_process(processor, request["prompt"], videos, request["mm_processor_kwargs"])
    training = streaming.prompts([samples[0]]).inputs
    assert torch.equal(out["input_ids"], training["input_ids"])
    assert torch.equal(out["pixel_values_videos"], training["pixel_values_videos"])
    with pytest.raises(NotImplementedError, match="vllm-server does not feed streamed video chunks"):
        server_request(streaming, samples[0])


def test_processor_kwargs_mirror_the_training_call(setup):
    """The switches `VideoInputBuilder.process_prompts` passes (both Qwen video processors know them)."""
    _, _, processor, _, _ = setup
    assert processor_kwargs(processor) == {"do_sample_frames": False, "do_resize": False, "cap_pixels_per_frame": False}


def test_sampling_kwargs_map_the_recipe_to_vllm():
    sampling = SamplingParams(temperature=0.7, top_p=0.9, top_k=0, max_new_tokens=33, repetition_penalty=1.1)
    kwargs = sampling_kwargs(sampling, 8, seed=123, suppress_token_ids=[5, 7])
    assert kwargs == dict(n=8, temperature=0.7, top_p=0.9, top_k=0, max_tokens=33, repetition_penalty=1.1,
                          logprobs=0, seed=123, skip_special_tokens=True,
                          logit_bias={5: LOGIT_SUPPRESS, 7: LOGIT_SUPPRESS})
    assert sampling_kwargs(SamplingParams(top_k=20), 2)["top_k"] == 20
    assert "logit_bias" not in sampling_kwargs(sampling, 2)


def test_request_seeds_are_distinct_per_prompt_and_call_and_reproducible():
    seeds = {request_seed(42, call, prompt, 8) for call in range(5) for prompt in range(16)}
    assert len(seeds) == 80
    assert request_seed(42, 3, 2, 8) == request_seed(42, 3, 2, 8)
    assert request_seed(None, 3, 2, 8) is None


def test_server_request_sends_lossless_frames_metadata_and_the_same_messages(setup):
    _, _, processor, builder, samples = setup
    request = server_request(builder, samples[0])
    video = builder.video(samples[0])
    expected = build_messages(samples[0], builder.template, builder.reasoning, builder.system)
    assert len(request["messages"]) == len(expected)
    content = request["messages"][-1]["content"]
    assert [p["type"] for p in content] == ["video_url", "text"]
    assert content[1] == expected[-1]["content"][1]
    frames = decode_frames_url(content[0]["video_url"]["url"])
    assert np.array_equal(frames, video.frames.permute(0, 2, 3, 1).numpy())  # PNG: not one pixel changed
    io_kwargs = request["media_io_kwargs"]["video"]
    assert io_kwargs["num_frames"] == video.frames.shape[0]  # else vLLM keeps only the first 32
    assert io_kwargs["frames_indices"] == list(video.indices) and io_kwargs["do_sample_frames"] is False
    assert media_io_kwargs(video) == request["media_io_kwargs"]
