"""The `hf` engine: `generate` on the policy itself (CPU default, and the reference behaviour).

Because it samples from the very module being trained, `sync_weights` has nothing to do. Each
prompt's video is decoded once (the builder's cache) and the G completions of a prompt share one
prompt encoding; with the policy's shared prefix (recipe `trainer.shared_prefix`) each prompt is
also prefilled once and its KV cache repeated G times (`rlvid.policy.generate`): the vision
encoder and the prompt's forward run once per prompt, not G times.
"""

from __future__ import annotations

from rlvid.data.sample import Sample
from rlvid.policy import Policy
from rlvid.policy.placeholders import placeholder_token_ids
from rlvid.rollout.base import Rollouts, SamplingParams


class HFRolloutEngine:
    """Rollouts with transformers' `generate` through `Policy.generate`."""

    def __init__(self, policy: Policy):
        self.policy = policy
        self.placeholder_ids = placeholder_token_ids(policy.model)

    def generate(self, batch: list[Sample], num_generations: int, sampling: SamplingParams) -> Rollouts:
        if not batch:
            return Rollouts([], [], [])
        tokenizer = self.policy.tokenizer
        new = self.policy.generate(
            batch, num_generations,
            do_sample=True,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            top_k=sampling.top_k or None,
            repetition_penalty=sampling.repetition_penalty,
            max_new_tokens=sampling.max_new_tokens,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            suppress_tokens=self.placeholder_ids or None,
        ).tolist()
        token_ids, truncated = [], []
        for row in new:
            cut = strip_after_eos(row, tokenizer.eos_token_id)
            token_ids.append(cut)
            truncated.append(not cut or cut[-1] != tokenizer.eos_token_id)
        texts = tokenizer.batch_decode(token_ids, skip_special_tokens=True)
        prompt_index = [i for i in range(len(batch)) for _ in range(num_generations)]
        return Rollouts(prompt_index, token_ids, texts, truncated=truncated)

    def sync_weights(self, model) -> None:
        """No-op: this engine generates with the trained module itself."""


def strip_after_eos(ids: list[int], eos_id: int | list[int]) -> list[int]:
    """`ids` up to and including the first eos (the padding `generate` adds after it is dropped)."""
    eos = set(eos_id) if isinstance(eos_id, list) else {eos_id}
    for i, t in enumerate(ids):
        if t in eos:
            return ids[: i + 1]
    return ids
