"""Rollout-engine log-probs in the training layout, the truncated IS correction and the mismatch metrics.

A sampling engine (vLLM) computes its token log-probs with other kernels, dtype paths and
batching than the trainer, so pi_rollout != pi_old even with identical weights. GRPO logs that
mismatch every step when the rollouts carry log-probs, and with `trainer.rollout_is_correction:
truncate` weighs each token's loss by min(pi_old / pi_rollout, rollout_is_cap)
(`rlvid.algos.truncated_is_weights`).
"""

from __future__ import annotations

import torch

from rlvid.algos import truncated_is_weights
from rlvid.algos.logprobs import masked_mean

IS_MODES = ("none", "truncate")


def rollout_logprob_rows(mask: torch.Tensor, logprobs: list[list[float]]) -> torch.Tensor:
    """[B, T] float32 tensor with row r's rollout log-probs at the True positions of `mask[r]` (0 elsewhere).

    `mask` is the completion mask of a collated micro-batch (`rlvid.policy.encode.collate`), whose
    True positions are exactly the completion tokens in order, so log-prob t lands on token t.
    """
    out = torch.zeros(mask.shape, dtype=torch.float32)
    for r, row in enumerate(logprobs):
        positions = mask[r].nonzero().flatten()
        if positions.numel() != len(row):
            raise ValueError(f"row {r}: {len(row)} rollout log-probs for {positions.numel()} completion tokens")
        out[r, positions] = torch.tensor(row, dtype=torch.float32)
    return out


def rollout_is(old_logp: torch.Tensor, rollout_logp: torch.Tensor, mask: torch.Tensor, mode: str,
               cap: float) -> tuple[torch.Tensor | None, dict[str, float]]:
    """IS weights for the loss (None when `mode` is none) and the mismatch metrics of one micro-batch.

    old_logp, mask: [B, T'] as `completion_logprobs` returns them; rollout_logp: [B, T] in the
    collated layout, aligned on the right (the trainer's T' columns are the last T' of T).
    Metrics: mean |log pi_old - log pi_rollout| over completion tokens, the untruncated ratio's
    mean / max, and the share of tokens whose weight the cap truncated.
    """
    if mode not in IS_MODES:
        raise ValueError(f"unknown trainer.rollout_is_correction {mode!r}; known: {list(IS_MODES)}")
    rollout = rollout_logp[:, rollout_logp.shape[1] - old_logp.shape[1]:].to(old_logp.device)
    old = old_logp.detach().float()
    with torch.no_grad():
        m = mask.bool()
        ratio = torch.where(m, torch.exp(old - rollout), torch.ones_like(old))
        any_token = bool(m.any())
        metrics = {
            "rollout/logp_abs_diff": float(masked_mean(torch.where(m, (old - rollout).abs(), 0.0), m)),
            "rollout/is_ratio_mean": float(masked_mean(ratio, m)),
            "rollout/is_ratio_max": float(ratio[m].max()) if any_token else 1.0,
            "rollout/is_truncated_fraction": float(masked_mean((ratio > cap).float(), m)),
        }
    weights = truncated_is_weights(old, rollout, cap) if mode == "truncate" else None
    return weights, metrics
