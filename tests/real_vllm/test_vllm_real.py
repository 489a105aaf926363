"""The colocated vLLM engine for real (vLLM's CPU build in CI): generation, log-probs, weight push, GRPO.

Each scenario runs in its own process (tests/real_vllm/scenarios.py): vLLM starts one engine per process.
"""

from __future__ import annotations

import pytest
from scenario_runner import run_scenario

ARCHS = ["qwen2_5_vl", "qwen3_vl"]


@pytest.mark.parametrize("arch", ARCHS)
def test_video_generation_matches_training_prompt_ids_and_log_probs(vllm_root, arch):
    r = run_scenario("generate", vllm_root, arch)
    assert r["prompts_checked"]  # vLLM's prompt tokens (video placeholders, timestamps) == the training processor's
    assert r["prompt_index"] == [i for i in range(3) for _ in range(4)]
    assert r["lengths"] == r["logprob_lengths"] and min(r["lengths"]) >= 1
    assert r["placeholders_sampled"] == 0
    gap = r["gap"]
    # fp32: positions, pixel normalisation and placeholder masking agree, so only summation order differs
    assert gap["mean_abs"] <= 1e-3 and gap["max_abs"] <= 1e-2, gap
    assert r["torch_threads"] >= 1


def test_a_push_in_buckets_smaller_than_a_layer_makes_vllm_follow_the_policy_like_a_fresh_engine(vllm_root):
    arch = "qwen2_5_vl"
    pushed = run_scenario("push", vllm_root, arch)
    assert pushed["before"]["mean_abs"] <= 1e-3
    assert pushed["stale"]["mean_abs"] > 0.05  # LoRA + noisy embedding/MLP: vLLM still samples from the old policy
    assert pushed["synced"]["mean_abs"] <= 1e-3 and pushed["synced"]["max_abs"] <= 1e-2, pushed["synced"]
    assert pushed["synced"]["mean_logp"] < -1.0  # a spread distribution: agreement is not two sure tokens
    assert pushed["push_buckets"] == pushed["push_tensors"] > 1  # one tensor per bucket: q, k, v of a layer apart
    fresh = run_scenario("fresh", vllm_root, arch)
    assert pushed["outputs"]["token_ids"] == fresh["outputs"]["token_ids"]
    for a, b in zip(pushed["outputs"]["logprobs"], fresh["outputs"]["logprobs"], strict=True):
        assert a == pytest.approx(b, abs=1e-4)


def test_three_grpo_steps_with_the_vllm_engine_keep_its_log_probs_on_the_policy(vllm_root):
    r = run_scenario("grpo", vllm_root, "qwen3_vl")
    assert r["steps"] == 3
    assert max(r["logp_abs_diff"]) <= 1e-3, r  # each step's rollout comes from the freshly pushed policy


def test_an_mdpo_pair_building_round_samples_with_the_vllm_engine(vllm_root):
    r = run_scenario("mdpo_pairs", vllm_root)
    assert r["code"] == 0 and r["prompts"] == 4 and r["scores_per_prompt"] == [4] * 4
    assert r["pairs"] > 0 and r["min_gap"] >= 0.05 - 1e-9 and r["ref_logp_negative"] and r["ids_present"]


def test_rlvid_select_scores_k_vllm_rollouts_per_sample(vllm_root):
    r = run_scenario("select", vllm_root)
    assert r["code"] == 0 and r["stats"] == 4 and r["rewards_per_sample"] == [4] * 4
    assert any(v > 0 for v in r["variances"]) and r["selected"] == 2  # top half by variance


def test_the_server_engine_generates_against_a_real_vllm_serve_on_cpu(vllm_root):
    r = run_scenario("server", vllm_root)
    assert r["prompts_checked"] and r["prompt_index"] == [0] * 4 + [1] * 4 and min(r["lengths"]) >= 1
    assert r["gap"]["mean_abs"] <= 1e-3 and r["gap"]["max_abs"] <= 1e-2, r["gap"]
