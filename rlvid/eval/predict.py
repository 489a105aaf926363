"""Greedy predictions on a split, with the same prompt and video settings as training."""

from __future__ import annotations

import torch

from rlvid.data.model_inputs import VideoInputBuilder
from rlvid.data.sample import Sample
from rlvid.models.token_prune import attach_token_pruner
from rlvid.rollout.hf_prefill import generate_shared_prefill


@torch.no_grad()
def predict(model, builder: VideoInputBuilder, samples: list[Sample], batch_size: int = 8,
            max_new_tokens: int = 128) -> list[str]:
    """Greedy completions for `samples`, in order."""
    was_training = model.training
    model.eval()
    tokenizer = builder.processor.tokenizer
    device = next(model.parameters()).device
    out: list[str] = []
    pruner = attach_token_pruner(model, builder)
    try:
        for i in range(0, len(samples), batch_size):
            batch = builder.prompts(samples[i:i + batch_size]).inputs
            batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
            options = dict(do_sample=False, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id)
            if pruner is not None:  # the plain generate cannot drop tokens; the shared prefill can
                ids = generate_shared_prefill(model, batch, 1, **options)
            else:
                ids = model.generate(**batch, **options)
            new = ids[:, batch["input_ids"].shape[1]:]
            out += tokenizer.batch_decode(new, skip_special_tokens=True)
    finally:
        model.train(was_training)
    return out
