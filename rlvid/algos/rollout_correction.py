"""The rollout-engine / trainer mismatch: truncated importance-sampling weights and the metrics that show it.

GRPO logs the mismatch every step when the rollouts carry log-probs (vLLM), and with
`trainer.rollout_is_correction: truncate` weighs each token's loss by min(pi_old / pi_rollout,
rollout_is_cap) (`truncated_is_weights`).
"""

from __future__ import annotations

import torch

from rlvid.algos.logprobs import masked_mean
from rlvid.algos.policy_loss import truncated_is_weights

IS_MODES = ("none", "truncate")


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
