"""The plain log-prob pass: one forward over whole prompt+completion rows.

The shared-prefix pass (`rlvid.policy.prefix_logprobs`) gives the same result with each prompt
run once; `Policy.logprobs` picks between them.
"""

from __future__ import annotations

import torch

from rlvid.algos import selective_log_softmax
from rlvid.models.token_prune import TokenPruner, pruned_forward
from rlvid.policy.placeholders import sampled_logits


def completion_logprobs(model, inputs: dict[str, torch.Tensor], completion_mask: torch.Tensor,
                        temperature: float = 1.0, pruner: TokenPruner | None = None
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """log pi(token) for the completion region: ([B, T'] log-probs, [B, T'] mask).

    Logits at position t predict token t+1. Only positions from the earliest completion token
    on are projected to the vocabulary (`logits_to_keep`), so the video prompt costs no lm_head
    time or [B, T, V] memory. `temperature` divides the logits as sampling did. With a `pruner`
    (data.video.token_drop.mode: token) the dropped visual tokens leave the sequence first.
    """
    device = completion_mask.device
    has = completion_mask.any(0).nonzero()
    start = int(has[0]) if has.numel() else completion_mask.shape[1] - 1
    start = max(start, 1)
    keep = completion_mask.shape[1] - start + 1
    if pruner is not None:
        logits = pruned_forward(model, inputs, pruner, logits_to_keep=keep, use_cache=False)
    else:
        logits = model(**inputs, logits_to_keep=keep, use_cache=False).logits
    ids = inputs["input_ids"][:, start:].to(device)
    logp = selective_log_softmax(sampled_logits(model, logits[:, :-1]), ids, temperature=temperature)
    return logp, completion_mask[:, start:]
