"""Per-token estimators of KL(policy || reference) from sampled-token log-probs.

With samples from the policy and log_ratio = logp - ref_logp (Schulman, "Approximating KL
divergence"):
- k1: log_ratio. Unbiased, high variance, can be negative per token.
- k2: log_ratio**2 / 2. Biased, low variance.
- k3: exp(-log_ratio) + log_ratio - 1. Unbiased, low variance, >= 0.
- low_var_kl: k3 as Temporal-R1/EasyR1 use it: the exponent clamped to [-20, 20] so it cannot
  overflow, the result clamped to [-10, 10] so one outlier token cannot dominate the step.
All are exactly 0 where policy == reference.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from rlvid.algos.registry import Registry

KlEstimator = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

KL_ESTIMATORS: Registry[KlEstimator] = Registry("KL estimator", entry_point_group="rlvid.kl_estimators")


def kl_penalty(logp: torch.Tensor, ref_logp: torch.Tensor, estimator: str = "low_var_kl") -> torch.Tensor:
    """Per-token KL estimate, same shape as `logp`; gradients flow through `logp` only if it has them."""
    return KL_ESTIMATORS.get(estimator)(logp, ref_logp)


@KL_ESTIMATORS.register("k1")
def kl_k1(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    return logp - ref_logp


@KL_ESTIMATORS.register("k2")
def kl_k2(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    return 0.5 * (logp - ref_logp).square()


@KL_ESTIMATORS.register("k3")
def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    ref_minus_logp = ref_logp - logp
    return torch.exp(ref_minus_logp) - ref_minus_logp - 1


@KL_ESTIMATORS.register("low_var_kl")
def kl_low_var(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    ref_minus_logp = (ref_logp - logp).clamp(min=-20.0, max=20.0)
    return (torch.exp(ref_minus_logp) - ref_minus_logp - 1).clamp(min=-10.0, max=10.0)
