"""Per-token log-probabilities and masked reductions over [B, T] token tensors."""

from __future__ import annotations

import torch


def selective_log_softmax(logits: torch.Tensor, ids: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """log_softmax(logits / temperature) gathered at `ids`, without materialising a [B, T, V] copy.

    logits: [..., V]; ids: [...] -> [...]. Delegates to TRL's implementation (a row loop, or a
    fused Triton kernel on GPU); imported lazily so `rlvid.algos` itself only needs torch.
    """
    from trl.trainer.utils import selective_log_softmax as trl_selective_log_softmax

    return trl_selective_log_softmax(logits, ids, temperature=temperature)


def masked_sum(values: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Sum of `values` where `mask` is true/1 (over `dim`, or over everything)."""
    masked = torch.where(mask.bool(), values, torch.zeros_like(values))  # NaN/inf under the mask cannot leak
    return masked.sum() if dim is None else masked.sum(dim=dim)


def masked_mean(values: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of `values` where `mask` is set; an all-masked row/tensor gives 0, never NaN."""
    weights = mask.bool().to(values.dtype)
    count = weights.sum() if dim is None else weights.sum(dim=dim)
    return masked_sum(values, mask, dim) / count.clamp(min=1.0)
