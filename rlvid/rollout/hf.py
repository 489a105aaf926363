"""The `hf` engine: `model.generate` on the policy itself (CPU default, and the reference behaviour).

Because it samples from the very module being trained, `sync_weights` has nothing to do. Each
prompt's video is decoded once (the builder's cache) and its inputs are repeated G times with
`num_return_sequences`, so the G completions of a prompt share one prompt encoding. With
`shared_prefill` (recipe `trainer.shared_prefix`), each prompt is prefilled once and its KV cache
repeated G times instead (rlvid.rollout.hf_prefill): the vision encoder and the prompt's forward
run once per prompt, not G times.
"""

from __future__ import annotations

import torch

from rlvid.data.model_inputs import VideoInputBuilder
from rlvid.data.sample import Sample
from rlvid.models.token_prune import TokenPruner, attach_token_pruner
from rlvid.rollout.base import Rollouts, SamplingParams
from rlvid.rollout.hf_prefill import can_share_prefill, generate_shared_prefill, timed_generate_calls


class HFRolloutEngine:
    """Rollouts with transformers' `generate` on the (unwrapped) policy model."""

    def __init__(self, model, builder: VideoInputBuilder, max_prompts_per_generate: int | None = None,
                 shared_prefill: bool = False):
        self.model = model
        self.builder = builder
        self.max_prompts_per_generate = max_prompts_per_generate
        self.shared_prefill = shared_prefill
        self.placeholder_ids = placeholder_token_ids(model)
        attach_token_pruner(model, builder)

    @torch.no_grad()
    def generate(self, batch: list[Sample], num_generations: int, sampling: SamplingParams) -> Rollouts:
        if not batch:
            return Rollouts([], [], [])
        chunk = self.max_prompts_per_generate or len(batch)
        parts = [self._generate(batch[i:i + chunk], num_generations, sampling) for i in range(0, len(batch), chunk)]
        out = Rollouts([], [], [], truncated=[])
        for offset, part in zip(range(0, len(batch), chunk), parts, strict=True):
            out.prompt_index += [offset + i for i in part.prompt_index]
            out.token_ids += part.token_ids
            out.texts += part.texts
            out.truncated += part.truncated
        return out

    def _generate(self, batch: list[Sample], num_generations: int, sampling: SamplingParams) -> Rollouts:
        model = self.model
        tokenizer = self.builder.processor.tokenizer
        device = next(model.parameters()).device
        inputs = {k: v.to(device) if isinstance(v, torch.Tensor) else v
                  for k, v in self.builder.prompts(batch).inputs.items()}
        options = dict(
            do_sample=True,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            top_k=sampling.top_k or None,
            repetition_penalty=sampling.repetition_penalty,
            max_new_tokens=sampling.max_new_tokens,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            suppress_tokens=self.placeholder_ids or None,
        )
        was_training = model.training
        model.eval()
        try:
            if (self.shared_prefill or TokenPruner.of(model) is not None) and can_share_prefill(model):
                ids = generate_shared_prefill(model, inputs, num_generations, **options)
            else:
                with timed_generate_calls(model):
                    ids = model.generate(**inputs, num_return_sequences=num_generations, **options)
        finally:
            model.train(was_training)
        new = ids[:, inputs["input_ids"].shape[1]:].tolist()
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


PLACEHOLDER_KEYS = ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id")


def placeholder_token_ids(model) -> list[int]:
    """Vision placeholder tokens, never sampled: one in a completion would break the next forward
    (the model checks that placeholder tokens match the visual features)."""
    cfg = model.config
    ids = {getattr(cfg, k, None) for k in PLACEHOLDER_KEYS}
    ids |= {getattr(getattr(cfg, "text_config", None), k, None) for k in PLACEHOLDER_KEYS}
    return sorted(i for i in ids if isinstance(i, int))


def strip_after_eos(ids: list[int], eos_id: int | list[int]) -> list[int]:
    """`ids` up to and including the first eos (the padding `generate` adds after it is dropped)."""
    eos = set(eos_id) if isinstance(eos_id, list) else {eos_id}
    for i, t in enumerate(ids):
        if t in eos:
            return ids[: i + 1]
    return ids
