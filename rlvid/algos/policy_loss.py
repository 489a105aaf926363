"""Clipped policy-gradient loss for GRPO-family updates (PPO clip, DAPO clip-higher, GSPO).

Per token, with ratio r = pi(y_t) / pi_old(y_t) and advantage A:

    loss_t = -min(r * A, clip(r, 1 - epsilon, 1 + epsilon_high) * A) * is_weight_t + beta * kl_t

- `epsilon_high` (DAPO "clip-higher") widens the upper bound only; None means = epsilon.
- `importance_sampling_level="sequence"` is GSPO (token variant): every token of sequence i uses
  the sequence ratio s_i = exp(mean_t(logp - old_logp)) as its value, with the gradient of
  sg[s_i] * pi(y_t) / sg[pi(y_t)], so clipping acts on whole sequences.
- `rollout_is_weights` corrects the mismatch between the rollout engine that sampled the tokens
  (e.g. vLLM) and the trainer's old policy (see `truncated_is_weights`); multiplied, not
  differentiated.
- `beta * kl` is the per-token KL penalty to the reference model (see `rlvid.algos.kl`).
The per-token loss is then reduced by `rlvid.algos.aggregation`.

A policy loss is one registered function `fn(logp, old_logp, advantages, mask, config) -> (token_loss
[B, T], metrics)`; `config` is its own section of options: the clip settings (epsilon, epsilon_high,
importance_sampling_level) and the recipe's `trainer.policy_loss_kwargs`, so a new loss (CISPO,
SAPO, a plugin `pkg.mod:fn`) reads its own keys without a change here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from rlvid.algos.aggregation import aggregate_loss
from rlvid.algos.kl import kl_penalty
from rlvid.algos.logprobs import masked_mean
from rlvid.algos.registry import Registry

PolicyLoss = Callable[..., tuple[torch.Tensor, dict[str, torch.Tensor]]]

POLICY_LOSSES: Registry[PolicyLoss] = Registry("policy loss", entry_point_group="rlvid.policy_losses")
IS_LEVELS = ("token", "sequence")


def compute_policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    loss: str = "clipped",
    epsilon: float = 0.2,
    epsilon_high: float | None = None,
    importance_sampling_level: str = "token",
    ref_logp: torch.Tensor | None = None,
    beta: float = 0.0,
    kl_estimator: str = "low_var_kl",
    rollout_is_weights: torch.Tensor | None = None,
    loss_agg: str = "seq_mean_token_mean",
    normalizer: float | torch.Tensor | None = None,
    max_completion_length: int | None = None,
    loss_kwargs: Mapping[str, Any] | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Scalar policy loss and metrics for one micro-batch.

    logp (with grad), old_logp, ref_logp, rollout_is_weights, mask: [B, T] over completion
    tokens; advantages: [B] (one per sequence) or [B, T]. `normalizer` and
    `max_completion_length` go to `aggregate_loss`. Metrics are detached 0-dim tensors (means
    over this micro-batch's masked tokens), so the trainer can reduce them across processes.
    `loss_kwargs` join the clip settings in the loss's own `config`.
    """
    if advantages.ndim == 1:
        advantages = advantages.unsqueeze(-1)
    config = {"epsilon": epsilon, "epsilon_high": epsilon if epsilon_high is None else epsilon_high,
              "importance_sampling_level": importance_sampling_level, **(loss_kwargs or {})}
    token_loss, metrics = POLICY_LOSSES.get(loss)(logp, old_logp.detach(), advantages.detach(), mask, config)
    if rollout_is_weights is not None:
        token_loss = token_loss * rollout_is_weights.detach()
        metrics["rollout_is_weight_mean"] = masked_mean(rollout_is_weights.detach(), mask)
    if beta != 0.0 and ref_logp is None:
        raise ValueError("beta != 0 needs ref_logp (reference-model log-probs)")
    if ref_logp is not None:
        kl = kl_penalty(logp, ref_logp.detach(), kl_estimator)
        metrics["kl_mean"] = masked_mean(kl.detach(), mask)
        if beta != 0.0:
            token_loss = token_loss + beta * kl
    total = aggregate_loss(token_loss, mask, loss_agg, normalizer, max_completion_length)
    return total, metrics


def log_importance_ratio(logp: torch.Tensor, old_logp: torch.Tensor, mask: torch.Tensor, level: str) -> torch.Tensor:
    """log r per token [B, T]: token level, or GSPO's sequence level (value = the sequence's mean)."""
    log_ratio = logp - old_logp
    if level == "token":
        return log_ratio
    if level == "sequence":
        sequence_log_ratio = masked_mean(log_ratio, mask, dim=-1).unsqueeze(-1)
        return logp - logp.detach() + sequence_log_ratio.detach()
    raise ValueError(f"unknown importance_sampling_level {level!r}; known: {list(IS_LEVELS)}")


def truncated_is_weights(old_logp: torch.Tensor, rollout_logp: torch.Tensor, cap: float = 2.0) -> torch.Tensor:
    """Truncated importance weights min(pi_old / pi_rollout, cap) per token, detached.

    pi_rollout are the sampling engine's log-probs of the same tokens (e.g. from vLLM), which
    differ slightly from the trainer's; the cap bounds the variance of the correction.
    """
    return torch.exp(old_logp.detach() - rollout_logp.detach()).clamp(max=cap)


@POLICY_LOSSES.register("clipped")
def clipped_policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    config: Mapping[str, Any],
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO-clip token loss [B, T] with asymmetric bounds; see the module docstring."""
    epsilon, epsilon_high = config["epsilon"], config["epsilon_high"]
    importance_sampling_level = config["importance_sampling_level"]
    ratio = torch.exp(log_importance_ratio(logp, old_logp, mask, importance_sampling_level))
    clipped_ratio = ratio.clamp(1.0 - epsilon, 1.0 + epsilon_high)
    token_loss = -torch.min(ratio * advantages, clipped_ratio * advantages)

    with torch.no_grad():
        r = ratio.detach()
        clipped_low = (r < 1.0 - epsilon) & (advantages < 0)
        clipped_high = (r > 1.0 + epsilon_high) & (advantages > 0)
        token_log_ratio = logp.detach() - old_logp
        unselected = ~mask.bool()
        no_token = unselected.all()  # an all-padding micro-batch reports ratio 1, not inf
        metrics = {
            "clip_fraction": masked_mean((clipped_low | clipped_high).float(), mask),
            "clip_fraction_low": masked_mean(clipped_low.float(), mask),
            "clip_fraction_high": masked_mean(clipped_high.float(), mask),
            # k3 estimate of KL(pi_old || pi) on the sampled tokens
            "approx_kl": masked_mean(torch.expm1(token_log_ratio) - token_log_ratio, mask),
            "ratio_mean": masked_mean(r, mask),
            "ratio_min": torch.where(no_token, 1.0, r.masked_fill(unselected, torch.inf).amin()),
            "ratio_max": torch.where(no_token, 1.0, r.masked_fill(unselected, -torch.inf).amax()),
        }
    return token_loss, metrics
