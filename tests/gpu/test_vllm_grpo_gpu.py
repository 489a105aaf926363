"""GRPO steps with the colocated vLLM engine: every sync makes vLLM's outputs follow the policy's.

If a push missed a weight, or a cache kept old vision embeddings, vLLM would sample from the old
policy and its log-probs would drift from the trainer's; the mismatch logged each step
(`rollout/logp_abs_diff`) stays at the bf16 noise floor instead. The control perturbs the policy
without a sync (mismatch jumps) and then syncs (mismatch back at the floor).
"""

from __future__ import annotations

import json

import torch
from gpu_helpers import report, vllm_recipe

from rlvid.app.compose import grpo_trainer
from rlvid.data.recipe_data import load_split
from rlvid.models.tiny import make_tiny_model
from rlvid.policy.encode import collate, encode_prompts
from rlvid.policy.logprobs import completion_logprobs
from rlvid.rollout import SamplingParams
from rlvid.trainers.grpo import GRPOTrainer


def mismatch(trainer: GRPOTrainer, samples) -> float:
    """Mean |log pi_vllm - log pi_policy| over tokens vLLM samples now."""
    out = trainer.engine.generate(samples, 4, SamplingParams(max_new_tokens=32))
    encoded = encode_prompts(trainer.builder, samples)
    inputs, mask = collate([encoded[i] for i in out.prompt_index], out.token_ids,
                           trainer.processor.tokenizer.pad_token_id)
    with torch.no_grad():
        logp, m = completion_logprobs(trainer.model, {k: v.cuda() for k, v in inputs.items()}, mask.cuda())
    rollout = torch.zeros(mask.shape)
    for r, row in enumerate(out.logprobs):
        rollout[r, mask[r]] = torch.tensor(row)
    return float((logp - rollout[:, -logp.shape[1]:].cuda()).abs()[m.bool()].mean())


def test_vllm_follows_the_policy_after_every_sync(gpu_root, tiny_setup):
    model = make_tiny_model(gpu_root / "mid-qwen2_5_vl", preset="mid")  # head_dim 64: vLLM attention kernels
    recipe = vllm_recipe(gpu_root / "grpo", tiny_setup, model, overrides={
        "rollout": {"num_generations": 4, "max_new_tokens": 32, "vllm": {"gpu_memory_utilization": 0.3}},
        "trainer": {"max_steps": 3, "lr": 1e-3, "global_prompts_per_step": 2, "micro_batch_size_per_device": 4}})
    trainer = grpo_trainer(recipe, gpu_root / "grpo")
    trainer.fit()
    rows = [json.loads(line) for line in open(gpu_root / "grpo" / "run" / "metrics.jsonl") if '"time/sync"' in line]
    per_step = [r["rollout/logp_abs_diff"] for r in rows]
    samples = load_split(recipe, "train")[:2]
    synced = mismatch(trainer, samples)
    with torch.no_grad():
        for p in trainer.model.parameters():
            p.add_(torch.randn_like(p) * 0.02)  # a policy change vLLM has not seen
    stale = mismatch(trainer, samples)
    trainer.engine.sync_weights(trainer.accelerator.unwrap_model(trainer.model))
    resynced = mismatch(trainer, samples)
    report("grpo_vllm_sync", {"per_step_logp_abs_diff": per_step, "synced": synced, "stale": stale,
                              "resynced": resynced, "sync_seconds": [r["time/sync"] for r in rows]})
    assert len(per_step) == 3 and max(per_step) < 0.05
    assert stale > 10 * max(synced, resynced)
    assert resynced < 0.05
