"""Shared prompt prefix: log-probs and gradients equal the plain forward; shared prefill samples the same tokens."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from rlvid.data.model_inputs import VideoInputBuilder, sampling_for_processor
from rlvid.policy import Policy, SequenceBatch
from rlvid.policy.encode import collate, encode_prompts
from rlvid.policy.generate import generate_shared_prefill
from rlvid.policy.logprobs import completion_logprobs
from rlvid.policy.prefix_logprobs import make_prefix_batch, prefix_completion_logprobs

ARCHS = ("qwen2_5_vl", "qwen3_vl")
ROWS = [0, 0, 1, 1, 1, 2, 0]  # three prompts, uneven groups, interleaved
LENGTHS = [5, 3, 7, 0, 2, 6, 1]  # one empty completion


def setup(path, streaming=False):
    processor = AutoProcessor.from_pretrained(path)
    sampling = sampling_for_processor(processor, fps=2.0, min_frames=8, max_frames=8, total_pixels=8 * 3136,
                                      min_pixels=3136, max_pixels=3136)
    torch.manual_seed(0)
    model = AutoModelForImageTextToText.from_pretrained(path, dtype=torch.float32)
    return model, VideoInputBuilder(processor, sampling, streaming=streaming, stream_chunk_seconds=3.0)


def batch(builder, samples):
    gen = torch.Generator().manual_seed(0)
    completions = [torch.randint(0, 700, (n,), generator=gen).tolist() for n in LENGTHS]
    encoded = encode_prompts(builder, samples)
    pad = builder.processor.tokenizer.pad_token_id
    inputs, mask = collate([encoded[r] for r in ROWS], completions, pad)
    return inputs, mask, make_prefix_batch(encoded, ROWS, completions, pad)


@pytest.mark.parametrize("arch,streaming", [("qwen2_5_vl", False), ("qwen3_vl", False), ("qwen2_5_vl", True)])
def test_shared_prefix_logprobs_match_the_plain_forward(vl_models, grounding_prompts, arch, streaming):
    model, builder = setup(vl_models[arch], streaming)
    model.eval()
    inputs, mask, shared = batch(builder, grounding_prompts)
    assert shared.prefix["input_ids"].shape[0] == 3 and len(set(shared.prompt_lens.tolist())) == 2
    if streaming:
        assert shared.prefix["video_grid_thw"].shape[0] > 3  # several chunks (videos) per prompt
    with torch.no_grad():
        plain, plain_mask = completion_logprobs(model, inputs, mask, temperature=0.7)
        shared_logp, shared_mask = prefix_completion_logprobs(model, shared, mask, temperature=0.7)
    assert torch.equal(plain_mask, shared_mask) and plain.shape == shared_logp.shape
    assert int(plain_mask.sum()) == sum(LENGTHS)
    torch.testing.assert_close(shared_logp[shared_mask], plain[plain_mask], rtol=0, atol=1e-5)
    assert (shared_logp[~shared_mask] == 0).all()


@pytest.mark.parametrize("arch", ARCHS)
def test_shared_prefix_gradients_match_the_plain_forward(vl_models, grounding_prompts, arch):
    model, builder = setup(vl_models[arch])
    model.train()
    inputs, mask, shared = batch(builder, grounding_prompts)
    weights = torch.linspace(-1.0, 1.0, mask.shape[1])
    grads = []
    passes = (lambda: completion_logprobs(model, inputs, mask), lambda: prefix_completion_logprobs(model, shared, mask))
    for fn in passes:
        model.zero_grad()
        logp, m = fn()
        (logp * weights[-logp.shape[1]:] * m).sum().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and any("visual" in n for n in grads[0])
    for name, g in grads[0].items():
        torch.testing.assert_close(grads[1][name], g, rtol=1e-4, atol=2e-5, msg=name)


def test_plain_pass_is_used_under_gradient_checkpointing(vl_models, grounding_prompts):
    model, builder = setup(vl_models["qwen2_5_vl"])
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    inputs, mask, shared = batch(builder, grounding_prompts)
    calls = []
    model.register_forward_pre_hook(lambda _m, _a, kw: calls.append("past_key_values" in kw), with_kwargs=True)
    logp, _ = Policy(model, builder).logprobs(SequenceBatch(inputs, mask, shared), grad=True)
    assert calls == [False]  # one plain forward, no KV cache
    assert logp.requires_grad


@pytest.mark.parametrize("arch", ARCHS)
def test_shared_prefill_generates_the_same_tokens_as_plain_generate(vl_models, grounding_prompts, arch):
    model, builder = setup(vl_models[arch])
    model.eval()
    inputs = builder.prompts(grounding_prompts).inputs
    assert (inputs["attention_mask"] == 0).any()  # left padding is exercised
    options = dict(do_sample=True, max_new_tokens=6, output_logits=True, return_dict_in_generate=True)
    torch.manual_seed(3)
    plain = model.generate(**inputs, num_return_sequences=3, **options)
    torch.manual_seed(3)
    shared = generate_shared_prefill(model, inputs, 3, **options)
    assert torch.equal(plain.sequences, shared.sequences)
    for a, b in zip(plain.logits, shared.logits, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-4)
