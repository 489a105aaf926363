"""`Policy`: the video LLM as every algorithm uses it — encode prompts, score completions, generate.

One object owns the unwrapped model and what shapes its forwards: the input builder (frames,
prompt template), the vision feature cache (`trainer.reuse_vision`), the visual token pruner
(`data.video.token_drop.mode: token`) and the shared-prefix setting (`trainer.shared_prefix`).
GRPO, SFT, M-DPO, the hf rollout engine, evaluation and data selection call only its methods, so
the efficiency machinery is decided here once instead of at every call site, and a new forward
pass (entropy, a value head) is one more method in this file.

Forwards with gradients go through `module`: the wrapper `accelerator.prepare` returned (DDP /
FSDP / DeepSpeed), set with `wrap`, so gradients are synchronised; the others run on the model.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import torch

from rlvid.data.model_inputs import VideoInputBuilder
from rlvid.data.sample import Sample
from rlvid.models.token_prune import TokenPruner
from rlvid.models.vision_reuse import VisionFeatureCache
from rlvid.policy.encode import EncodedPrompt, collate, encode_prompts, to_device
from rlvid.policy.generate import can_share_prefill, generate_shared_prefill, timed_generate_calls
from rlvid.policy.logprobs import completion_logprobs
from rlvid.policy.prefix_logprobs import (
    PrefixBatch,
    make_prefix_batch,
    prefix_completion_logprobs,
    supports_shared_prefix,
)


@dataclass
class SequenceBatch:
    """Prompt+completion rows for one log-prob pass.

    inputs / mask: right-padded model inputs and the bool [B, T] mask of completion tokens.
    shared: the same rows laid out for the shared-prefix pass (each distinct prompt once); None = plain pass.
    """

    inputs: dict[str, torch.Tensor]
    mask: torch.Tensor
    shared: PrefixBatch | None = None


@dataclass
class PolicyStats:
    """Counters since the last `pop_stats` (None where the feature is off)."""

    visual_tokens_kept: int | None = None  # token pruning: visual tokens the LLM saw ...
    visual_tokens_total: int | None = None  # ... of all visual tokens of those forwards
    videos_computed: int | None = None  # vision reuse: videos run through the vision tower ...
    videos_reused: int | None = None  # ... and served from the step's cache


class Policy:
    """The policy model on video prompts (see the module docstring)."""

    def __init__(self, model: torch.nn.Module, builder: VideoInputBuilder, *, reuse_vision: bool | None = None,
                 shared_prefix: bool = False):
        """`reuse_vision`: True/False installs the vision cache on / as a pass-through; None installs it only
        when token pruning needs the seam. A model without a Qwen-style vision core gets no cache (and token
        pruning on it is an error)."""
        self.model = model
        self.module: torch.nn.Module = model
        self.builder = builder
        self.shared_prefix = shared_prefix
        self.pruner = TokenPruner.for_builder(builder)
        self.vision_cache = _install_vision_cache(model, reuse_vision, self.pruner)

    @property
    def processor(self):
        return self.builder.processor

    @property
    def tokenizer(self):
        return self.builder.processor.tokenizer

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def with_builder(self, builder: VideoInputBuilder) -> Policy:
        """The same model, module, cache and pruner, with prompts rendered by `builder` (e.g. CoTasks chains)."""
        view = Policy.__new__(Policy)
        view.__dict__.update(self.__dict__)
        view.builder = builder
        return view

    def wrap(self, module: torch.nn.Module) -> None:
        """Run training forwards through `module`, the accelerate-prepared wrapper of `model`."""
        self.module = module

    # ------------------------------------------------------------------ inputs

    def encode(self, samples: list[Sample]) -> list[EncodedPrompt]:
        """Each sample's prompt through the processor once (video decoded once, the builder's cache)."""
        return encode_prompts(self.builder, samples)

    def batch(self, prompts: list[EncodedPrompt], completion_ids: list[list[int]], *,
              shared_prefix: bool | None = None) -> SequenceBatch:
        """Rows prompts[i] + completion_ids[i]; `shared_prefix` (default: the policy's setting) adds the
        shared-prefix layout, in which rows holding the same `EncodedPrompt` object (a prompt's G completions)
        share one prompt forward."""
        pad = self.tokenizer.pad_token_id
        inputs, mask = collate(prompts, completion_ids, pad)
        use_prefix = self.shared_prefix if shared_prefix is None else shared_prefix
        shared = None
        if use_prefix:
            order = {id(p): k for k, p in reversed(list(enumerate(prompts)))}
            owners = [order[id(p)] for p in prompts]
            shared = make_prefix_batch(prompts, owners, completion_ids, pad)
        return SequenceBatch(inputs, mask, shared)

    # ------------------------------------------------------------------ forward passes

    def logprobs(self, batch: SequenceBatch, *, grad: bool = False, temperature: float = 1.0
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-token log-probs [B, T'] of the completions and their mask [B, T'] (the plain pass's layout).

        The shared-prefix pass when the batch has its layout and the model allows it (not under gradient
        checkpointing while training), else the plain pass; both drop visual tokens when pruning is on.
        """
        mask = batch.mask.to(self.device)
        module = self.module if grad else self.model  # gradients are synchronised through the wrapper
        with nullcontext() if grad else torch.no_grad():
            if batch.shared is not None and supports_shared_prefix(module):
                return prefix_completion_logprobs(module, batch.shared, mask, temperature, self.pruner)
            return completion_logprobs(module, to_device(batch.inputs, mask.device), mask, temperature, self.pruner)

    @torch.no_grad()
    def generate(self, samples: list[Sample], n: int, *, shared_prefill: bool | None = None,
                 **options) -> torch.Tensor:
        """New token ids [len(samples) * n, new] (rows grouped by prompt) from `model.generate(**options)`.

        In eval mode. Each prompt is prefilled once for its n rows (`shared_prefill`, default: the policy's
        shared-prefix setting) on Qwen-style models, and always when visual tokens are pruned (the plain
        `generate` cannot drop them).
        """
        inputs = to_device(self.builder.prompts(samples).inputs, self.device)
        share = self.shared_prefix if shared_prefill is None else shared_prefill
        was_training = self.model.training
        self.model.eval()
        try:
            if (share or self.pruner is not None) and can_share_prefill(self.model):
                ids = generate_shared_prefill(self.model, inputs, n, self.pruner, **options)
            else:
                with timed_generate_calls(self.model):
                    ids = self.model.generate(**inputs, num_return_sequences=n, **options)
        finally:
            self.model.train(was_training)
        return ids[:, inputs["input_ids"].shape[1]:]

    # ------------------------------------------------------------------ state of a step

    @contextmanager
    def step(self) -> Iterator[Policy]:
        """One training step: a video's visual features are computed once inside it (when reuse is on)."""
        with self.vision_cache.step() if self.vision_cache is not None else nullcontext():
            yield self

    @contextmanager
    def without_adapter(self) -> Iterator[Policy]:
        """The base model with its LoRA adapters off (the reference when training LoRA)."""
        with self.model.disable_adapter():
            yield self

    def pop_stats(self) -> PolicyStats:
        """Token-pruning and vision-reuse counters since the last call; resets them."""
        stats = PolicyStats()
        if self.pruner is not None:
            stats.visual_tokens_kept, stats.visual_tokens_total = self.pruner.kept_tokens, self.pruner.total_tokens
            self.pruner.kept_tokens = self.pruner.total_tokens = 0
        cache = self.vision_cache
        if cache is not None:
            stats.videos_computed, stats.videos_reused = cache.stats.computed, cache.stats.reused
            cache.stats.computed = cache.stats.reused = cache.stats.bypassed = 0
        return stats


def _install_vision_cache(model: torch.nn.Module, reuse: bool | None, pruner: TokenPruner | None
                          ) -> VisionFeatureCache | None:
    """The vision seam of `model` (shared with any Policy already on it), carrying `pruner`."""
    if reuse is None and pruner is None and VisionFeatureCache.installed(model) is None:
        return None
    try:
        cache = VisionFeatureCache.attach(model, enabled=reuse)
    except TypeError:
        if pruner is not None:
            raise
        return None
    cache.pruner = pruner
    return cache
