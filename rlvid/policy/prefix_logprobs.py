"""Shared-prefix log-probs: a prompt is run once for all of its completions.

The G completions of a prompt share its video-heavy prompt. The plain pass (`completion_logprobs`)
runs G full prompt+completion forwards; this one runs each distinct prompt of a micro-batch once
(without its last token) with `use_cache=True`, selects the prompt's KV cache for every row that
continues it, and runs only `last prompt token + completion` against it. Positions follow
Qwen2.5-VL / Qwen3-VL's multimodal RoPE: the prompt's 3-D positions come from the model's own
`get_rope_index`, and text after the prompt continues from the prompt's largest position + 1 on
all three axes, exactly what the plain forward computes. The result has the plain pass's layout
([B, T - start] log-probs aligned with the completion mask), so the two are interchangeable and
equal within float tolerance (tests/test_efficiency_prefix.py).

With gradients the prefix forward carries them: its graph is shared by the micro-batch's rows,
so the prompt's forward and backward run once per prompt instead of once per completion. Under
gradient checkpointing (which turns the KV cache off) and for models without a `get_rope_index`,
the plain pass is used.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from rlvid.algos import selective_log_softmax
from rlvid.models.token_prune import TokenPruner, compact_inputs
from rlvid.models.vision_reuse import find_vl_core
from rlvid.policy.encode import EncodedPrompt, to_device
from rlvid.policy.placeholders import sampled_logits
from rlvid.timing import subphase

logger = logging.getLogger("rlvid.policy")


@dataclass
class PrefixBatch:
    """A micro-batch laid out for the shared-prefix pass.

    prefix: the distinct prompts without their last token, right-padded, with their visual tensors.
    row_prompt: [B] which prefix row each sequence continues.
    prompt_lens: [B] full prompt length of each row (where its completion starts in the plain layout).
    tail_ids / tail_mask: [B, 1 + C] the prompt's last token followed by the completion, right-padded.
    """

    prefix: dict[str, torch.Tensor]
    row_prompt: torch.Tensor
    prompt_lens: torch.Tensor
    tail_ids: torch.Tensor
    tail_mask: torch.Tensor

    def to(self, device: torch.device) -> PrefixBatch:
        return PrefixBatch(to_device(self.prefix, device), self.row_prompt.to(device), self.prompt_lens.to(device),
                           self.tail_ids.to(device), self.tail_mask.to(device))


def make_prefix_batch(prompts: list[EncodedPrompt], row_prompt: list[int], completion_ids: list[list[int]],
                      pad_id: int) -> PrefixBatch:
    """Lay out rows `prompts[row_prompt[i]] + completion_ids[i]` with each distinct prompt once."""
    order = list(dict.fromkeys(row_prompt))
    slot = {p: i for i, p in enumerate(order)}
    uniq = [prompts[p] for p in order]
    length = max(int(p.tokens["input_ids"].shape[0]) for p in uniq) - 1
    prefix: dict[str, torch.Tensor] = {}
    for key in uniq[0].tokens:
        fill = pad_id if key == "input_ids" else 0
        prefix[key] = torch.stack([torch.nn.functional.pad(p.tokens[key][:-1], (0, length + 1 - p.tokens[key].shape[0]),
                                                           value=fill) for p in uniq])
    for key in uniq[0].visual:
        prefix[key] = torch.cat([p.visual[key] for p in uniq])
    for key in uniq[0].per_row:
        prefix[key] = torch.cat([p.per_row[key] for p in uniq])
    width = 1 + max((len(c) for c in completion_ids), default=0)
    ids = prompts[0].tokens["input_ids"]
    tail_ids = torch.full((len(row_prompt), width), pad_id, dtype=ids.dtype)
    tail_mask = torch.zeros((len(row_prompt), width), dtype=torch.long)
    lens = []
    for r, (p, comp) in enumerate(zip(row_prompt, completion_ids, strict=True)):
        prompt_ids = prompts[p].tokens["input_ids"]
        lens.append(int(prompt_ids.shape[0]))
        tail_ids[r, 0] = prompt_ids[-1]
        tail_ids[r, 1:1 + len(comp)] = torch.tensor(comp, dtype=ids.dtype)
        tail_mask[r, :1 + len(comp)] = 1
    return PrefixBatch(prefix, torch.tensor([slot[p] for p in row_prompt]), torch.tensor(lens), tail_ids, tail_mask)


def supports_shared_prefix(model: torch.nn.Module) -> bool:
    """False where the KV cache is off (gradient checkpointing while training), the family is not mRoPE-Qwen,
    or gradients would flow through FSDP2-sharded parameters (see `fsdp2_gradient_pass`)."""
    try:
        core = find_vl_core(model)
    except TypeError:
        return False
    checkpointing = any(getattr(m, "gradient_checkpointing", False) for m in core.language_model.modules())
    return not (checkpointing and core.training) and not fsdp2_gradient_pass(core)


def fsdp2_gradient_pass(core: torch.nn.Module) -> bool:
    """True for a pass with gradients through FSDP2-sharded parameters: the plain pass is used there.

    The shared-prefix pass runs the model twice (prefill, then the completions against its KV cache) before
    one backward. The completions' gradient reaches each prefill layer through the cached keys/values, made
    inside the layer (k_proj / v_proj), not through the layer's output, where FSDP2 hangs the hook that
    re-gathers a resharded layer's weights before its backward; so autograd meets a freed weight ("setStorage:
    ... out of bounds for storage of size 0", tests/test_fsdp2_cpu.py). Keeping the layers unsharded through
    the backward would cost FSDP2's memory saving, so the plain pass is used instead. No-grad passes (old /
    reference log-probs, generation) keep the shared prefix.
    """
    if not torch.is_grad_enabled():
        return False
    from torch.distributed.fsdp import FSDPModule

    # the module class, not DTensor parameters: between forwards FSDP2 may hold a module's unsharded plain tensors
    if not any(isinstance(m, FSDPModule) for m in core.language_model.modules()):
        return False
    if not any(p.requires_grad for p in core.parameters()):
        return False
    global _fsdp2_logged
    if not _fsdp2_logged:
        _fsdp2_logged = True
        logger.warning("trainer.shared_prefix: the gradient pass uses the plain pass under FSDP2 (the shared-prefix "
                       "backward reaches resharded k/v weights through the KV cache, bypassing FSDP2's re-gather "
                       "hooks); generation and no-grad log-probs still share prefixes")
    return True


_fsdp2_logged = False


def prefix_completion_logprobs(model: torch.nn.Module, batch: PrefixBatch, completion_mask: torch.Tensor,
                               temperature: float = 1.0, pruner: TokenPruner | None = None
                               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Same result as `completion_logprobs(model, collated_inputs, completion_mask, temperature, pruner)`."""
    device = completion_mask.device
    batch = batch.to(device)
    compact = compact_inputs(model, batch.prefix, pruner)  # identity unless visual tokens drop
    pre = compact.inputs
    with subphase("prefill"):
        cache = model(**pre, position_ids=compact.position_ids, use_cache=True, logits_to_keep=1).past_key_values
    cache.reorder_cache(batch.row_prompt)
    prefix_len = pre["attention_mask"].sum(1)
    base = (prefix_len + compact.rope_deltas.view(-1))[batch.row_prompt]  # position of each row's last prompt token
    steps = torch.arange(batch.tail_ids.shape[1], device=device)
    tail_pos = (base[:, None] + steps[None]).unsqueeze(0).expand(3, -1, -1)
    attention = torch.cat([pre["attention_mask"][batch.row_prompt], batch.tail_mask.to(pre["attention_mask"].dtype)], 1)
    logits = model(input_ids=batch.tail_ids, attention_mask=attention, position_ids=tail_pos, past_key_values=cache,
                   use_cache=True).logits
    tail_logp = selective_log_softmax(sampled_logits(model, logits[:, :-1]), batch.tail_ids[:, 1:],
                                      temperature=temperature)
    return _to_plain_layout(tail_logp, batch, completion_mask)


def _to_plain_layout(tail_logp: torch.Tensor, batch: PrefixBatch, completion_mask: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """[B, C] completion-aligned log-probs -> the plain pass's [B, T - start] layout and mask."""
    has = completion_mask.any(0).nonzero()
    start = int(has[0]) if has.numel() else completion_mask.shape[1] - 1
    start = max(start, 1)
    width = completion_mask.shape[1] - start
    valid = batch.tail_mask[:, 1:].bool()
    rows, steps = valid.nonzero(as_tuple=True)
    cols = batch.prompt_lens[rows] + steps - start
    out = tail_logp.new_zeros((tail_logp.shape[0], width)).index_put((rows, cols), tail_logp[rows, steps])
    return out, completion_mask[:, start:]
