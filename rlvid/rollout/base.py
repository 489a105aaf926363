"""The rollout contract: what every engine (hf, vllm colocate, vllm server) takes and returns.

The trainer only sees `RolloutEngine.generate` and `RolloutEngine.sync_weights`, so an engine can
be swapped from the recipe (`rollout.engine`) without touching the training loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from rlvid.data.sample import Sample


@dataclass(frozen=True)
class SamplingParams:
    """How completions are sampled (the recipe's `rollout.*`)."""

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # 0 = off
    max_new_tokens: int = 256
    repetition_penalty: float = 1.0

    @classmethod
    def from_recipe(cls, rollout) -> SamplingParams:
        return cls(temperature=rollout.temperature, top_p=rollout.top_p, top_k=rollout.top_k,
                   max_new_tokens=rollout.max_new_tokens, repetition_penalty=rollout.repetition_penalty)


@dataclass
class Rollouts:
    """Completions of a batch of prompts: row r belongs to prompt `prompt_index[r]`.

    Engines return G rows per prompt, grouped (rows i*G .. i*G+G-1 of prompt i); `select` keeps the
    order but may drop rows (online selection drops whole groups), so code reads `prompt_index`,
    never the block layout.

    token_ids: the generated ids, cut after the first eos (the eos is kept, as the model produced it).
    texts: the decoded completions (special tokens skipped), what rewards read.
    logprobs: per-token log-probs from the sampling engine (None when the engine gives none; the hf
        engine IS the policy, so there is nothing to correct).
    """

    prompt_index: list[int]
    token_ids: list[list[int]]
    texts: list[str]
    logprobs: list[list[float]] | None = None
    truncated: list[bool] = field(default_factory=list)  # True when max_new_tokens cut the completion

    def __len__(self) -> int:
        return len(self.texts)

    def select(self, rows: list[int]) -> Rollouts:
        """The rollouts at `rows` (order kept); used when online selection drops groups."""
        return Rollouts(
            prompt_index=[self.prompt_index[r] for r in rows],
            token_ids=[self.token_ids[r] for r in rows],
            texts=[self.texts[r] for r in rows],
            logprobs=None if self.logprobs is None else [self.logprobs[r] for r in rows],
            truncated=[self.truncated[r] for r in rows] if self.truncated else [],
        )


@runtime_checkable
class RolloutEngine(Protocol):
    """Samples G completions per prompt and receives the trainer's updated weights."""

    def generate(self, batch: list[Sample], num_generations: int, sampling: SamplingParams) -> Rollouts:
        ...

    def sync_weights(self, model) -> None:
        ...
