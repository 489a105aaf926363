"""Vision-encoder reuse: one vision-tower run per video per step, results equal to the unshared computation."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from rlvid.data.loaders import load_samples
from rlvid.data.model_inputs import VideoInputBuilder, sampling_for_processor
from rlvid.models.tiny import make_tiny_model
from rlvid.models.vision_reuse import VisionFeatureCache, find_vl_core

ARCHS = ("qwen2_5_vl", "qwen3_vl")


@pytest.fixture(scope="module")
def setups(tmp_path_factory, synthetic_dir):
    root = tmp_path_factory.mktemp("vision_models")
    samples = [s for s in load_samples(str(synthetic_dir / "train.jsonl"), split="train").samples
               if s.task == "temporal_grounding"][:2]
    out = {}
    for arch in ARCHS:
        path = make_tiny_model(root / arch, arch)
        processor = AutoProcessor.from_pretrained(path)
        sampling = sampling_for_processor(processor, fps=2.0, min_frames=8, max_frames=8, total_pixels=8 * 3136,
                                          min_pixels=3136, max_pixels=3136)
        out[arch] = (path, VideoInputBuilder(processor, sampling).prompts(samples).inputs)
    return out


def load(path):
    torch.manual_seed(0)
    return AutoModelForImageTextToText.from_pretrained(path, dtype=torch.float32)


def count_vision_runs(model) -> list[int]:
    """Patches the vision tower sees per call (a list that grows as the tower runs)."""
    seen: list[int] = []
    find_vl_core(model).visual.register_forward_pre_hook(lambda _m, args: seen.append(int(args[0].shape[0])))
    return seen


@pytest.mark.parametrize("arch", ARCHS)
def test_forward_reuses_features_and_matches_the_plain_forward(setups, arch):
    path, inputs = setups[arch]
    model = load(path).eval()
    with torch.no_grad():
        plain = model(**inputs).logits
    cache = VisionFeatureCache(model)
    runs = count_vision_runs(model)
    with cache.step(), torch.no_grad():
        first = model(**inputs).logits
        second = model(**inputs).logits
    assert len(runs) == 1  # two forwards, one vision-tower run
    assert cache.stats.computed == 2 and cache.stats.reused == 2
    torch.testing.assert_close(first, plain, rtol=0, atol=1e-5)
    torch.testing.assert_close(second, plain, rtol=0, atol=1e-5)
    with torch.no_grad():  # outside a step nothing is cached
        model(**inputs)
    assert len(runs) == 2 and cache._entries == []


@pytest.mark.parametrize("arch", ARCHS)
def test_generate_runs_the_vision_tower_once_per_video_not_per_rollout(setups, arch):
    path, inputs = setups[arch]
    model = load(path).eval()
    runs = count_vision_runs(model)
    cache = VisionFeatureCache(model)
    with cache.step():
        torch.manual_seed(1)
        reused = model.generate(**inputs, do_sample=True, max_new_tokens=4, num_return_sequences=4)
    patches = int(inputs["pixel_values_videos"].shape[0])
    assert runs == [patches]  # 2 videos once, not 8 copies
    cache.enabled = False
    with cache.step():
        torch.manual_seed(1)
        plain = model.generate(**inputs, do_sample=True, max_new_tokens=4, num_return_sequences=4)
    assert runs[1] == 4 * patches
    assert torch.equal(reused, plain)


@pytest.mark.parametrize("arch", ARCHS)
def test_trained_vision_tower_is_recomputed_with_gradients(setups, arch):
    path, inputs = setups[arch]
    plain_model, model = load(path).train(), load(path).train()
    cache = VisionFeatureCache(model)
    runs = count_vision_runs(model)
    with cache.step():
        with torch.no_grad():
            model(**inputs)  # fills the cache (e.g. the old log-prob pass)
        loss = model(**inputs).logits.float().pow(2).mean()
    assert len(runs) == 2 and cache.stats.bypassed == 2  # the update forward did not take cached features
    loss.backward()
    plain_model(**inputs).logits.float().pow(2).mean().backward()
    vision = dict(find_vl_core(model).visual.named_parameters())
    for name, p in find_vl_core(plain_model).visual.named_parameters():
        torch.testing.assert_close(vision[name].grad, p.grad, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("arch", ARCHS)
def test_frozen_vision_tower_reuses_features_in_the_update(setups, arch):
    path, inputs = setups[arch]
    plain_model, model = load(path).train(), load(path).train()
    for m in (plain_model, model):
        find_vl_core(m).visual.requires_grad_(False)
    cache = VisionFeatureCache.attach(model, enabled=True)
    runs = count_vision_runs(model)
    with cache.step():
        with torch.no_grad():
            model(**inputs)
        model(**inputs).logits.float().pow(2).mean().backward()
    assert len(runs) == 1 and cache.stats.reused == 2
    plain_model(**inputs).logits.float().pow(2).mean().backward()
    llm = dict(find_vl_core(model).language_model.named_parameters())
    for name, p in find_vl_core(plain_model).language_model.named_parameters():
        torch.testing.assert_close(llm[name].grad, p.grad, rtol=1e-4, atol=1e-6)


def test_different_videos_and_models_never_share_features(setups):
    path, inputs = setups["qwen2_5_vl"]
    policy, ref = load(path).eval(), load(path).eval()
    with torch.no_grad():
        for p in find_vl_core(ref).visual.parameters():
            p.add_(0.01)
    caches = [VisionFeatureCache.attach(m, enabled=True) for m in (policy, ref)]
    assert VisionFeatureCache.attach(policy) is caches[0]  # attaching again returns the installed cache
    other = dict(inputs, pixel_values_videos=inputs["pixel_values_videos"].flip(0))
    with caches[0].step(), caches[1].step(), torch.no_grad():
        a = policy(**inputs).logits
        b = ref(**inputs).logits
        c = policy(**other).logits
    assert caches[0].stats.computed == 4 and caches[1].stats.computed == 2
    assert not torch.allclose(a, b) and not torch.allclose(a, c)
