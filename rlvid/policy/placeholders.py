"""Vision placeholder tokens: never sampled by any engine, so left out of the trainer's softmax too."""

from __future__ import annotations

import torch

PLACEHOLDER_KEYS = ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id")


def placeholder_token_ids(model) -> list[int]:
    """Vision placeholder tokens, never sampled: one in a completion would break the next forward
    (the model checks that placeholder tokens match the visual features)."""
    cfg = getattr(model, "module", model).config
    ids = {getattr(cfg, k, None) for k in PLACEHOLDER_KEYS}
    ids |= {getattr(getattr(cfg, "text_config", None), k, None) for k in PLACEHOLDER_KEYS}
    return sorted(i for i in ids if isinstance(i, int))


def sampled_logits(model, logits: torch.Tensor) -> torch.Tensor:
    """fp32 logits of the distribution the rollout engines sample from: vision placeholders at -inf.

    Both engines forbid placeholder tokens (hf: `suppress_tokens`; vLLM: the lowest logit bias),
    so the trainer's log-probs and ratios must leave them out of the softmax too.
    """
    out = logits.float()
    ids = placeholder_token_ids(model)
    if ids:
        index = torch.tensor(ids, device=out.device)
        fill = out.index_fill_ if out is not logits else out.index_fill  # in place on .float()'s own copy
        out = fill(-1, index, float("-inf"))
    return out
