"""Per-token visual dropping (token_drop.mode: token): which tokens go; every pruned path computes the same thing."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from test_efficiency_prefix import ARCHS, batch, setup
from tiny_setup import make_tiny_setup, write_recipe

from rlvid.app.compose import grpo_trainer
from rlvid.config import load_recipe
from rlvid.data.token_drop import TokenDrop
from rlvid.models.token_prune import (
    TokenPruneSettings,
    compact_inputs,
    pruned_forward,
    token_keep_mask,
)
from rlvid.models.vision_reuse import find_vl_core
from rlvid.policy import Policy
from rlvid.policy.generate import generate_shared_prefill
from rlvid.policy.logprobs import completion_logprobs
from rlvid.policy.prefix_logprobs import prefix_completion_logprobs

STD = (0.5, 0.5, 0.5)
SETTINGS = TokenPruneSettings(threshold=0.05, min_kept_frames=2, image_std=STD, temporal_patch=2, merge=2)


def _patches(frames: torch.Tensor) -> torch.Tensor:
    """[t, 2, 3, 4, 4] pair-major frames (normalised pixels) -> processor layout [t*4*4/... rows, C*2*p*p], p = 1."""
    t = frames.shape[0]
    x = frames.reshape(t, 2, 3, 2, 2, 2, 2)  # t, tp, C, h/m, m, w/m, m (patch size 1)
    x = x.permute(0, 3, 5, 4, 6, 2, 1)  # t, h/m, w/m, m, m, C, tp
    return x.reshape(t * 16, 3 * 2)


def test_a_token_goes_when_its_region_did_not_change_since_it_was_last_kept():
    frames = torch.zeros(4, 2, 3, 4, 4)
    frames[1, :, :, 2:, :2] = 1.0  # pair 1: token 2 (bottom-left) changes by 0.5 on a 0-1 scale (std 0.5)
    frames[2] = frames[1]
    frames[2, :, :, :2, :2] += 0.05  # pair 2: token 0 changes by 0.025 (< 0.05): dropped
    frames[3] = frames[2]
    frames[3, :, :, :2, :2] += 0.05  # pair 3: token 0 has now drifted 0.05 from where it was kept: kept
    keep = token_keep_mask(_patches(frames), (4, 4, 4), SETTINGS).view(4, 4)
    assert keep[0].all()  # the first pair is kept whole
    assert keep[1].tolist() == [False, False, True, False]
    assert keep[2].tolist() == [False, False, False, False]
    assert keep[3].tolist() == [True, False, False, False]
    more = token_keep_mask(_patches(frames), (4, 4, 4), TokenPruneSettings(0.05, 6, STD, 2, 2)).view(4, 4)
    assert int(more.sum()) == 12 and more[1, 2] and more[3, 0]  # three pairs' worth: most changed added back


def test_static_video_keeps_only_the_first_pair():
    frames = torch.rand(1, 2, 3, 4, 4).expand(5, -1, -1, -1, -1).clone()
    keep = token_keep_mask(_patches(frames), (5, 4, 4), SETTINGS).view(5, 4)
    assert keep[0].all() and not keep[1:].any()


def builder_without_drop(builder):
    plain = dataclasses.replace(builder.sampling, drop=TokenDrop("none", 0.0, 2))
    return type(builder)(builder.processor, plain, builder.cache)


def _pruned(path, threshold):
    model, builder = setup(path)
    model.eval()
    builder.sampling = dataclasses.replace(builder.sampling, drop=TokenDrop("token", threshold, 2))
    policy = Policy(model, builder)  # installs the pruner's filter on the vision seam
    return model, builder, policy.pruner


@pytest.mark.parametrize("arch", ARCHS)
def test_threshold_zero_drops_nothing_and_matches_the_unpruned_passes(vl_models, grounding_prompts, arch):
    model, builder = setup(vl_models[arch])
    model.eval()
    inputs, mask, shared = batch(builder, grounding_prompts)
    with torch.no_grad():
        plain, m = completion_logprobs(model, inputs, mask)
        prefix, _ = prefix_completion_logprobs(model, shared, mask)
        model_p, builder_p, pruner = _pruned(vl_models[arch], 0.0)
        pruned_plain, _ = completion_logprobs(model_p, inputs, mask, pruner=pruner)
        pruned_prefix, _ = prefix_completion_logprobs(model_p, shared, mask, pruner=pruner)
    assert pruner.kept_tokens == pruner.total_tokens > 0
    torch.testing.assert_close(pruned_plain[m], plain[m], rtol=0, atol=1e-5)  # padding columns aside
    torch.testing.assert_close(pruned_prefix[m], prefix[m], rtol=0, atol=1e-5)


@pytest.mark.parametrize("arch", ARCHS)
def test_pruned_plain_and_shared_prefix_passes_agree_and_differ_from_unpruned(vl_models, grounding_prompts, arch):
    model, builder, pruner = _pruned(vl_models[arch], 0.02)
    inputs, mask, shared = batch(builder, grounding_prompts)
    with torch.no_grad():
        plain, m = completion_logprobs(model, inputs, mask, pruner=pruner)
        prefix, _ = prefix_completion_logprobs(model, shared, mask, pruner=pruner)
    assert 0 < pruner.kept_tokens < pruner.total_tokens  # the static synthetic background is dropped
    torch.testing.assert_close(prefix[m], plain[m], rtol=0, atol=1e-5)
    unpruned_policy = Policy(model, builder_without_drop(builder))  # the seam stops filtering
    with torch.no_grad():
        unpruned, _ = completion_logprobs(model, inputs, mask)
    assert (unpruned - plain).abs()[m].max() > 1e-4  # dropping changed what the model saw

    # with gradients (the update): the pruned shared-prefix pass gives the pruned plain pass's gradients
    assert unpruned_policy.pruner is None
    Policy(model, builder)  # filtering again
    model.train()
    core = find_vl_core(model)
    params = [next(core.visual.parameters()), core.language_model.layers[0].self_attn.q_proj.weight]
    a, _ = prefix_completion_logprobs(model, shared, mask, pruner=pruner)
    grads_a = torch.autograd.grad(a[m].sum(), params)
    b, _ = completion_logprobs(model, inputs, mask, pruner=pruner)
    grads_b = torch.autograd.grad(b[m].sum(), params)
    for ga, gb in zip(grads_a, grads_b, strict=True):
        assert ga.abs().sum() > 0
        torch.testing.assert_close(ga, gb, rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("arch", ARCHS)
def test_pruned_generation_continues_positions_like_the_pruned_forward(vl_models, grounding_prompts, arch):
    model, builder, pruner = _pruned(vl_models[arch], 0.02)
    inputs = builder.prompts(grounding_prompts).inputs
    with torch.no_grad():
        ids = generate_shared_prefill(model, inputs, 1, pruner, do_sample=False, max_new_tokens=4,
                                      pad_token_id=builder.processor.tokenizer.pad_token_id)
        length = inputs["input_ids"].shape[1]
        assert torch.equal(ids[:, :length], inputs["input_ids"])  # the full prompt comes back
        for k in range(ids.shape[1] - length):  # greedy, token by token, with whole-sequence pruned forwards
            seq = ids[:, :length + k]
            step = {**inputs, "input_ids": seq,
                    "attention_mask": torch.cat([inputs["attention_mask"],
                                                 torch.ones(seq.shape[0], k, dtype=torch.long)], 1),
                    "mm_token_type_ids": torch.cat([inputs["mm_token_type_ids"],
                                                    torch.zeros(seq.shape[0], k, dtype=torch.long)], 1)}
            logits = pruned_forward(model, step, pruner, logits_to_keep=1)
            assert torch.equal(logits[:, -1].argmax(-1), ids[:, length + k])


def test_compacted_positions_are_the_full_sequence_positions(vl_models, grounding_prompts):
    model, builder, pruner = _pruned(vl_models["qwen2_5_vl"], 0.02)
    inputs = builder.prompts(grounding_prompts).inputs
    core = find_vl_core(model)
    full, _ = core.get_rope_index(inputs["input_ids"], mm_token_type_ids=inputs["mm_token_type_ids"],
                                  attention_mask=inputs["attention_mask"], video_grid_thw=inputs["video_grid_thw"],
                                  second_per_grid_ts=inputs["second_per_grid_ts"])
    c = compact_inputs(model, inputs, pruner)
    real = c.index >= 0
    for r in range(c.index.shape[0]):
        assert torch.equal(c.position_ids[:, r, real[r]], full[:, r, c.index[r, real[r]]])
        assert torch.equal(c.inputs["input_ids"][r, real[r]], inputs["input_ids"][r, c.index[r, real[r]]])
    video = inputs["input_ids"] == core.config.video_token_id
    assert int((c.inputs["input_ids"] == core.config.video_token_id).sum()) < int(video.sum())
    assert torch.equal(c.inputs["attention_mask"].sum(1), real.sum(1))


def test_grpo_step_with_token_mode_logs_fewer_visual_tokens(tmp_path):
    setup_ = make_tiny_setup(tmp_path / "s")
    recipe = write_recipe(tmp_path / "r.yaml", setup_, tmp_path / "run", {
        "data": {"video": {"token_drop": {"mode": "token", "threshold": 0.02, "min_kept_frames": 2}}},
        "trainer": {"max_steps": 1, "beta": 0.04, "num_iterations": 2}})
    trainer = grpo_trainer(load_recipe(recipe), tmp_path)
    ref = trainer.reference  # sees the same tokens as the policy: its own pruner, filtering its vision seam
    assert ref.pruner is not None and ref.vision_cache.pruner is ref.pruner
    trainer.fit()
    lines = open(tmp_path / "run" / "metrics.jsonl")
    row = [json.loads(line) for line in lines if "tokens/visual_kept_fraction" in line]
    assert len(row) == 1 and 0 < row[0]["tokens/visual_kept_fraction"] < 1
    assert row[0]["tokens/frames_kept_fraction"] == 1.0  # frames all go through the vision tower
