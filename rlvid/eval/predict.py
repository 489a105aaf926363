"""Greedy predictions on a split, with the same prompt and video settings as training."""

from __future__ import annotations

from rlvid.data.sample import Sample
from rlvid.policy import Policy


def predict(policy: Policy, samples: list[Sample], batch_size: int = 8, max_new_tokens: int = 128) -> list[str]:
    """Greedy completions for `samples`, in order.

    The plain `generate` unless visual tokens are pruned (then each prompt is prefilled once, the only
    way the prefill can drop them): greedy evaluation does not follow `trainer.shared_prefix`.
    """
    tokenizer = policy.tokenizer
    out: list[str] = []
    for i in range(0, len(samples), batch_size):
        new = policy.generate(samples[i:i + batch_size], 1, shared_prefill=False, do_sample=False,
                              max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id)
        out += tokenizer.batch_decode(new, skip_special_tokens=True)
    return out
