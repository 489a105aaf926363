"""Tiny models of both architectures load offline and generate from a synthetic video."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from rlvid.data.model_inputs import VideoInputBuilder, sampling_for_processor
from rlvid.data.sample import Sample
from rlvid.data.synthetic import encode_mp4
from rlvid.models.tiny import SPECIAL_TOKENS, make_tiny_model


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    import numpy as np

    frames = [np.full((96, 128, 3), (10 * i) % 255, dtype=np.uint8) for i in range(48)]
    return encode_mp4(tmp_path_factory.mktemp("v") / "clip.mp4", frames, fps=8)


@pytest.fixture(scope="module", params=["qwen2_5_vl", "qwen3_vl"])
def tiny(request, tmp_path_factory):
    out = make_tiny_model(tmp_path_factory.mktemp(request.param) / "model", arch=request.param)
    return request.param, out


def test_loads_offline_with_auto_classes_and_is_tiny(tiny, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    arch, path = tiny
    model = AutoModelForImageTextToText.from_pretrained(path)
    processor = AutoProcessor.from_pretrained(path)
    assert model.config.model_type == arch
    assert 1e5 <= sum(p.numel() for p in model.parameters()) <= 5e6
    vocab = processor.tokenizer.get_vocab()
    for token in SPECIAL_TOKENS + ["<think>", "</think>", "<answer>", "</answer>"]:
        assert token in vocab
    assert model.config.video_token_id == vocab["<|video_pad|>"]
    assert (path / "model.safetensors").exists() and (path / "chat_template.jinja").exists()


def test_generates_from_a_video_through_its_processor(tiny, video):
    arch, path = tiny
    model = AutoModelForImageTextToText.from_pretrained(path)
    processor = AutoProcessor.from_pretrained(path)
    builder = VideoInputBuilder(processor, sampling_for_processor(processor, min_pixels=4 * 32 * 32))
    sample = Sample("s", str(video), 6.0, "temporal_grounding", "When does it get bright?", intervals=[(1.0, 2.0)])
    batch = builder.prompts([sample, sample])
    assert "<|vision_start|>" in batch.texts[0] and "When does it get bright?" in batch.texts[0]
    n_video_tokens = int((batch.inputs["input_ids"] == model.config.video_token_id).sum())
    grid = batch.inputs["video_grid_thw"]
    assert n_video_tokens == int(grid.prod(-1).sum()) // 4  # merge 2x2
    torch.manual_seed(0)
    out = model.generate(**batch.inputs, max_new_tokens=6, do_sample=True)
    assert out.shape[0] == 2 and out.shape[1] > batch.inputs["input_ids"].shape[1]
    if arch == "qwen3_vl":
        assert "seconds>" in processor.tokenizer.decode(batch.inputs["input_ids"][0])
    else:
        assert torch.allclose(batch.inputs["second_per_grid_ts"], torch.tensor([1.0, 1.0]))


def test_completion_mask_and_logprobs_do_not_depend_on_batching(tiny, video):
    _, path = tiny
    model = AutoModelForImageTextToText.from_pretrained(path)
    processor = AutoProcessor.from_pretrained(path)
    builder = VideoInputBuilder(processor, sampling_for_processor(processor, min_pixels=4 * 32 * 32))
    short = Sample("a", str(video), 6.0, "mcq", "Which colour?", options=["red", "blue"], answer="B")
    long = Sample("b", str(video), 6.0, "temporal_grounding", "When does it get bright? " * 3, intervals=[(1, 2)])
    completions = ["<answer>B</answer>", "<think>it brightens</think><answer>1.0 to 2.0</answer>"]
    inputs, mask = builder.prompt_with_completions([short, long], completions)
    tok = processor.tokenizer
    for row, text in enumerate(completions):
        expected = tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        assert inputs["input_ids"][row][mask[row]].tolist() == expected

    def logprobs(batch, m):
        with torch.no_grad():
            logits = model(**batch).logits[:, :-1]
        lp = torch.log_softmax(logits.float(), -1).gather(-1, batch["input_ids"][:, 1:, None])[..., 0]
        return [lp[r][m[r, 1:]] for r in range(len(m))]

    together = logprobs(inputs, mask)
    alone = logprobs(*builder.prompt_with_completions([short], completions[:1]))
    torch.testing.assert_close(together[0], alone[0], atol=1e-5, rtol=1e-5)
