"""DPO losses on (chosen, rejected) pairs, with VidChain's metric-aware options (M-DPO).

Inputs are SEQUENCE log-probs (summed over completion tokens) of the policy and the reference
for the chosen and rejected completion of each pair. With
h = (logp_chosen - ref_chosen) - (logp_rejected - ref_rejected):

- "sigmoid": -(1 - ls) * log sigmoid(beta * h - m) - ls * log sigmoid(-(beta * h - m))
             (ls = label_smoothing, the conservative-DPO noise rate).
- "ipo":     (h - (1 / (2 * beta) + m)) ** 2: the margin m shifts IPO's regression target.

Metric-aware options, from the metric gap g >= 0 between chosen and rejected (e.g. SODA or
METEOR of the chosen minus that of the rejected):
- margin m = margin_scale * g: pairs far apart in the metric must be separated more. For
  "sigmoid" m is in reward units (subtracted from beta * h, as DPO-with-offset); for "ipo" in
  log-ratio units (added to the target).
- per-pair weight: "none" 1, "raw" g, "normalized" g / mean(g) (mean over the batch, or over a
  given `gap_normalizer`, e.g. the mean gap of the whole pair set).
- sft_gamma * NLL(chosen): VidChain's SFT term keeping the chosen output likely.

A DPO loss is one registered function `fn(h, margin, config) -> per-pair loss [P]`; `config` is its
own section: beta, label_smoothing and the recipe's `mdpo.loss_kwargs` (a plugin reads its keys there).

Under micro-batching pass `normalizer` = the total number of pairs of the optimizer step; the
returned losses then sum (over micro-batches) to the full-batch loss.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F

from rlvid.algos.registry import Registry

DpoLoss = Callable[[torch.Tensor, torch.Tensor, Mapping[str, Any]], torch.Tensor]

DPO_LOSSES: Registry[DpoLoss] = Registry("DPO loss", entry_point_group="rlvid.dpo_losses")
GAP_WEIGHTINGS = ("none", "raw", "normalized")


def compute_dpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    *,
    beta: float = 0.1,
    loss: str = "sigmoid",
    label_smoothing: float = 0.0,
    metric_gap: torch.Tensor | None = None,
    gap_weighting: str = "none",
    gap_normalizer: float | None = None,
    margin_scale: float = 0.0,
    sft_gamma: float = 0.0,
    chosen_nll: torch.Tensor | None = None,
    normalizer: float | torch.Tensor | None = None,
    loss_kwargs: Mapping[str, Any] | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Scalar M-DPO loss and metrics over P pairs (every tensor argument is [P]).

    `chosen_nll` is the policy's per-pair NLL of the chosen completion (e.g. token mean),
    needed when sft_gamma > 0. Metrics are detached 0-dim tensors.
    """
    if gap_weighting not in GAP_WEIGHTINGS:
        raise ValueError(f"unknown gap_weighting {gap_weighting!r}; known: {list(GAP_WEIGHTINGS)}")
    needs_gap = gap_weighting != "none" or margin_scale != 0.0
    if needs_gap and metric_gap is None:
        raise ValueError("gap_weighting or margin_scale needs metric_gap")
    if metric_gap is not None and bool((metric_gap < 0).any()):
        raise ValueError("metric_gap must be >= 0 (metric of chosen minus metric of rejected)")
    if sft_gamma != 0.0 and chosen_nll is None:
        raise ValueError("sft_gamma != 0 needs chosen_nll")

    chosen_logratio = policy_chosen_logps - ref_chosen_logps.detach()
    rejected_logratio = policy_rejected_logps - ref_rejected_logps.detach()
    h = chosen_logratio - rejected_logratio
    margin = margin_scale * metric_gap.detach() if margin_scale != 0.0 else torch.zeros_like(h)
    config = {"beta": beta, "label_smoothing": label_smoothing, **(loss_kwargs or {})}
    pair_loss = DPO_LOSSES.get(loss)(h, margin, config)

    weight = _pair_weights(metric_gap, gap_weighting, gap_normalizer, like=h)
    count = normalizer if normalizer is not None else h.numel()
    dpo_term = (weight * pair_loss).sum() / count
    total = dpo_term
    sft_term = torch.zeros((), dtype=h.dtype, device=h.device)
    if sft_gamma != 0.0:
        sft_term = chosen_nll.sum() / count
        total = total + sft_gamma * sft_term

    with torch.no_grad():
        chosen_reward = beta * chosen_logratio.detach()
        rejected_reward = beta * rejected_logratio.detach()
        metrics = {
            "rewards/chosen": chosen_reward.mean(),
            "rewards/rejected": rejected_reward.mean(),
            "rewards/accuracy": (chosen_reward > rejected_reward).float().mean(),
            "rewards/margin": (chosen_reward - rejected_reward).mean(),
            "loss/dpo": dpo_term.detach(),
            "loss/sft": sft_term.detach(),
            "pair_weight_mean": weight.mean(),
        }
    return total, metrics


def _pair_weights(gap: torch.Tensor | None, weighting: str, gap_normalizer: float | None, like: torch.Tensor):
    if weighting == "none":
        return torch.ones_like(like)
    gap = gap.detach().to(like.dtype)
    if weighting == "raw":
        return gap
    mean_gap = gap.mean() if gap_normalizer is None else torch.as_tensor(gap_normalizer, dtype=like.dtype)
    return gap / mean_gap.clamp(min=1e-12)  # all gaps 0 -> all weights 0, not NaN


@DPO_LOSSES.register("sigmoid")
def sigmoid_dpo(h: torch.Tensor, margin: torch.Tensor, config: Mapping[str, Any]) -> torch.Tensor:
    beta, label_smoothing = config["beta"], config["label_smoothing"]
    z = beta * h - margin
    return -(1.0 - label_smoothing) * F.logsigmoid(z) - label_smoothing * F.logsigmoid(-z)


@DPO_LOSSES.register("ipo")
def ipo(h: torch.Tensor, margin: torch.Tensor, config: Mapping[str, Any]) -> torch.Tensor:
    if config["label_smoothing"] != 0.0:
        raise ValueError("label_smoothing applies to the 'sigmoid' DPO loss only, not 'ipo'")
    return (h - (1.0 / (2.0 * config["beta"]) + margin)).square()
