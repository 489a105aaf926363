"""Colocated vLLM on a random Qwen2.5-VL-3B-shaped model: video generation, log-probs vs transformers, sleep memory.

One vLLM engine per file (vLLM starts once per process): run this file on its own, see README.md.
"""

from __future__ import annotations

import time

import pytest
import torch
from gpu_helpers import report, vllm_recipe

from rlvid.algos import rollout_is
from rlvid.data.recipe_data import load_split, make_input_builder
from rlvid.models.loading import load_policy, load_processor
from rlvid.policy import Policy
from rlvid.policy.encode import collate, encode_prompts
from rlvid.policy.logprobs import completion_logprobs
from rlvid.rollout import SamplingParams, make_engine
from rlvid.rollout.is_correction import rollout_logprob_rows

G = 8


@pytest.fixture(scope="module")
def colocated(gpu_root, model_3b, tiny_setup):
    recipe = vllm_recipe(gpu_root / "colocate", tiny_setup, model_3b,
                         overrides={"rollout": {"vllm": {"enable_sleep_mode": True}}})
    processor = load_processor(recipe.model.path)
    builder = make_input_builder(recipe, processor)
    model = load_policy(recipe.model, device="cuda").eval()
    start = time.perf_counter()
    engine = make_engine(recipe, Policy(model, builder))
    report("vllm_start", {"seconds": time.perf_counter() - start})
    return recipe, model, processor, builder, engine, load_split(recipe, "train")[:4]


def test_generates_from_16_frame_videos_with_logprobs(colocated):
    recipe, model, processor, builder, engine, samples = colocated
    start = time.perf_counter()
    out = engine.generate(samples, G, SamplingParams(max_new_tokens=64))
    seconds = time.perf_counter() - start
    assert engine._prompts_checked  # vLLM's prompt tokens (video placeholders included) == the training processor's
    assert out.prompt_index == [i for i in range(len(samples)) for _ in range(G)]
    assert out.logprobs is not None and all(len(lp) == len(ids) for lp, ids in zip(out.logprobs, out.token_ids,
                                                                                   strict=True))
    assert all(all(v <= 0.0 for v in lp) for lp in out.logprobs)
    video_pad = processor.tokenizer.convert_tokens_to_ids("<|video_pad|>")
    assert all(video_pad not in ids for ids in out.token_ids)
    frames = builder.video(samples[0]).frames.shape[0]
    assert frames == 16
    report("vllm_generate_3b", {"prompts": len(samples), "G": G, "frames": frames,
                                "completion_tokens": sum(map(len, out.token_ids)), "seconds_incl_first_push": seconds,
                                "first_push_seconds": engine.last_push.seconds,
                                "first_push_gib": engine.last_push.bytes / 1024**3})


def test_vllm_logprobs_match_a_transformers_forward_on_the_same_tokens(colocated):
    recipe, model, processor, builder, engine, samples = colocated
    out = engine.generate(samples, G, SamplingParams(temperature=1.0, max_new_tokens=64))
    encoded = encode_prompts(builder, samples)
    diffs, is_stats = [], []
    for start in range(0, len(out), 8):
        rows = list(range(start, min(start + 8, len(out))))
        inputs, mask = collate([encoded[out.prompt_index[r]] for r in rows], [out.token_ids[r] for r in rows],
                               processor.tokenizer.pad_token_id)
        with torch.no_grad():
            logp, m = completion_logprobs(model, {k: v.cuda() for k, v in inputs.items()}, mask.cuda(), 1.0)
        rollout = rollout_logprob_rows(mask, [out.logprobs[r] for r in rows])
        _, metrics = rollout_is(logp, rollout, m, "truncate", 2.0)
        diffs.append((logp - rollout[:, -logp.shape[1]:].cuda()).abs()[m.bool()])
        is_stats.append(metrics)
    diff = torch.cat(diffs).float()
    figures = {"tokens": diff.numel(), "mean_abs": float(diff.mean()), "p99_abs": float(diff.quantile(0.99)),
               "max_abs": float(diff.max()),
               "is_ratio_mean": sum(s["rollout/is_ratio_mean"] for s in is_stats) / len(is_stats),
               "is_truncated_fraction": sum(s["rollout/is_truncated_fraction"] for s in is_stats) / len(is_stats)}
    report("vllm_vs_transformers_logprobs_3b_bf16", figures)
    assert figures["mean_abs"] < 0.05, figures  # bf16 kernels differ; a wrong weight or frame would be far off


def test_sleep_frees_weights_and_kv_cache_and_wake_restores_them(colocated):
    *_, engine, samples = colocated
    engine.generate(samples[:1], 2, SamplingParams(max_new_tokens=8))
    events = {e["event"]: e for e in engine.memory_log}
    sleep, wake_w, wake_kv = events["sleep"], events["wake:weights"], events["wake:kv_cache"]
    freed = sleep["after"]["free_gib"] - sleep["before"]["free_gib"]
    weights = wake_w["before"]["free_gib"] - wake_w["after"]["free_gib"]
    kv = wake_kv["before"]["free_gib"] - wake_kv["after"]["free_gib"]
    report("vllm_sleep_wake_3b", {"freed_by_sleep_gib": freed, "weights_woken_gib": weights, "kv_woken_gib": kv,
                                  "used_asleep_gib": sleep["after"]["used_gib"],
                                  "used_awake_gib": sleep["before"]["used_gib"]})
    assert weights > 4.0  # ~6 GiB of bf16 weights come back on wake
    assert freed > weights  # sleep level 2 also hands back the KV cache
