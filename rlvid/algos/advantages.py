"""Group-relative advantages from per-completion rewards (GRPO, Dr.GRPO, RLOO).

Every estimator must see the rewards of COMPLETE groups: all G completions of each prompt.
The trainers guarantee it by sharding prompts, never completions, over processes: a group is
generated, scored and normalised on one process, so no gathering is needed (only
`scale_rewards: batch` reduces its std over processes). Group statistics of a partial group
would be wrong (Video-R1 #53).

Shared conventions:
- `scale`: "group" divides the centred reward by the group's std (GRPO), "batch" by the std of
  all rewards in the batch (more robust to near-constant groups), "none" keeps the mean-centred
  reward (Dr.GRPO). Stds are unbiased (Bessel-corrected), as `torch.std`.
- A group whose rewards are all equal (this includes a group of size 1) carries no signal:
  its advantages are exactly 0, never NaN and never a rounding residue divided by `eps`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from rlvid.algos.registry import Registry

AdvantageEstimator = Callable[[torch.Tensor, torch.Tensor, str, float], torch.Tensor]

ADVANTAGE_ESTIMATORS: Registry[AdvantageEstimator] = Registry("advantage estimator",
                                                              entry_point_group="rlvid.advantage_estimators")
SCALES = ("group", "batch", "none")


def compute_advantages(
    rewards: torch.Tensor,
    group_ids: torch.Tensor | None = None,
    num_generations: int | None = None,
    estimator: str = "grpo",
    scale: str = "group",
    eps: float = 1e-6,
) -> torch.Tensor:
    """Advantages [N] for rewards [N] of gathered, complete groups.

    Groups are given either by `group_ids` (any integer label per completion, groups need not
    be contiguous nor of equal size) or by `num_generations` (consecutive blocks of G).
    """
    if rewards.ndim != 1:
        raise ValueError(f"rewards must be 1-D [N], got shape {tuple(rewards.shape)}")
    if scale not in SCALES:
        raise ValueError(f"unknown advantage scale {scale!r}; known: {list(SCALES)}")
    group_index = _group_index(rewards, group_ids, num_generations)
    estimate = ADVANTAGE_ESTIMATORS.get(estimator)
    # statistics in float64; constant groups are zeroed explicitly, not by cancellation
    out_dtype = rewards.dtype if rewards.is_floating_point() else torch.get_default_dtype()
    return estimate(rewards.double(), group_index, scale, eps).to(out_dtype)


def _group_index(rewards: torch.Tensor, group_ids: torch.Tensor | None, num_generations: int | None) -> torch.Tensor:
    """Dense group index 0..K-1 per completion."""
    n = rewards.numel()
    if (group_ids is None) == (num_generations is None):
        raise ValueError("pass exactly one of group_ids or num_generations")
    if group_ids is not None:
        if group_ids.shape != rewards.shape:
            raise ValueError(f"group_ids shape {tuple(group_ids.shape)} != rewards shape {tuple(rewards.shape)}")
        return torch.unique(group_ids.to(rewards.device), return_inverse=True)[1]
    if num_generations < 1 or n % num_generations:
        raise ValueError(f"{n} rewards do not split into groups of num_generations={num_generations}")
    return torch.arange(n, device=rewards.device) // num_generations


def _group_stats(rewards: torch.Tensor, group_index: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Per-completion (group size, group sum, group unbiased std, group-is-constant)."""
    k = int(group_index.max()) + 1 if group_index.numel() else 0
    zeros = rewards.new_zeros(k)
    count = zeros.index_add(0, group_index, torch.ones_like(rewards))
    total = zeros.index_add(0, group_index, rewards)
    mean = total / count
    sq_dev = zeros.index_add(0, group_index, (rewards - mean[group_index]) ** 2)
    std = (sq_dev / (count - 1).clamp(min=1)).sqrt()
    lo = torch.full_like(zeros, torch.inf).scatter_reduce(0, group_index, rewards, reduce="amin")
    hi = torch.full_like(zeros, -torch.inf).scatter_reduce(0, group_index, rewards, reduce="amax")
    return count[group_index], total[group_index], std[group_index], (lo == hi)[group_index]


def _scaled(centred: torch.Tensor, rewards: torch.Tensor, group_std: torch.Tensor, scale: str, eps: float):
    if scale == "group":
        return centred / (group_std + eps)
    if scale == "batch":
        batch_std = rewards.std() if rewards.numel() > 1 else rewards.new_zeros(())
        return centred / (batch_std + eps)
    return centred


@ADVANTAGE_ESTIMATORS.register("grpo")
def grpo_advantages(rewards: torch.Tensor, group_index: torch.Tensor, scale: str, eps: float) -> torch.Tensor:
    """A_i = (r_i - mean(group)) / scale: GRPO ("group"), Dr.GRPO ("none")."""
    count, total, std, constant = _group_stats(rewards, group_index)
    advantages = _scaled(rewards - total / count, rewards, std, scale, eps)
    return advantages.masked_fill(constant, 0.0)


@ADVANTAGE_ESTIMATORS.register("rloo")
def rloo_advantages(rewards: torch.Tensor, group_index: torch.Tensor, scale: str, eps: float) -> torch.Tensor:
    """Leave-one-out baseline: A_i = (r_i - mean of the OTHER rewards in the group) / scale.

    Equal to G/(G-1) * (r_i - group mean); usually run with scale="none".
    """
    count, total, std, constant = _group_stats(rewards, group_index)
    baseline = (total - rewards) / (count - 1).clamp(min=1)
    advantages = _scaled(rewards - baseline, rewards, std, scale, eps)
    return advantages.masked_fill(constant, 0.0)
