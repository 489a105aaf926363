"""Generation with a shared prefill: each prompt is prefilled once, then decoded G times.

`generate(num_return_sequences=G)` repeats every prompt (video pixels included) G times before
the first forward, so the vision encoder and the prompt's LLM forward run G times. Here the
prompts (without their last token) run once with `use_cache=True`; the KV cache is repeated G
times per prompt, the model's mRoPE offset (`rope_deltas`, which `generate` uses to continue
positions after a cached prefix) is set for the repeated rows, and `generate` continues from
the cache with text only. With the same seed this samples the same tokens as the plain call
(tests/test_efficiency_prefix.py); the logits differ only by float rounding. The repeated cache
gets room for the new tokens up front (`kv_buffer.reserve_decode_room`), so decoding writes each
token's keys and values in place instead of re-concatenating the cache per token.

Timed as sub-phases of the open phase: `prefill` (prompt forward, LLM part; the vision encoder
is its own `vision` sub-phase) and `decode_tokens` (the token-by-token loop).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from rlvid.models.token_prune import TOKEN_KEYS, TokenPruner, compact_inputs
from rlvid.models.vision_reuse import find_vl_core
from rlvid.policy.kv_buffer import reserve_decode_room
from rlvid.timing import active_timer, subphase


def can_share_prefill(model: torch.nn.Module) -> bool:
    """True for Qwen2.5-VL / Qwen3-VL style models (mRoPE with `get_rope_index`)."""
    try:
        find_vl_core(model)
    except TypeError:
        return False
    return True


def generate_shared_prefill(model, inputs: dict[str, torch.Tensor], num_generations: int,
                            pruner: TokenPruner | None = None, **generate_kwargs) -> torch.Tensor:
    """`model.generate(**inputs, num_return_sequences=num_generations, ...)` with one prefill per prompt.

    `inputs` is a left-padded prompt batch (the builder's `prompts`). Returns ids [B * G, L + new] (the whole
    prompt, also when visual tokens were dropped), rows grouped by prompt like `num_return_sequences`. With a
    `pruner` (data.video.token_drop.mode: token) the prefill runs on the kept visual tokens only.
    """
    core = find_vl_core(model)
    ids, attention = inputs["input_ids"], inputs["attention_mask"]
    prefix = compact_inputs(model, {k: (v[:, :-1] if k in TOKEN_KEYS else v) for k, v in inputs.items()},
                            pruner)  # the identity unless visual tokens are dropped
    with subphase("prefill"):
        cache = model(**prefix.inputs, position_ids=prefix.position_ids, use_cache=True,
                      logits_to_keep=1).past_key_values
    rows = torch.arange(ids.shape[0], device=ids.device).repeat_interleave(num_generations)
    cache.reorder_cache(rows)
    cache = reserve_decode_room(cache, _new_token_room(model, generate_kwargs))  # in-place writes, no cat per token
    core.rope_deltas = prefix.rope_deltas[rows]
    short_ids = torch.cat([prefix.inputs["input_ids"], ids[:, -1:]], 1)
    short_mask = torch.cat([prefix.inputs["attention_mask"], attention[:, -1:]], 1)
    with subphase("decode_tokens"):
        out = model.generate(input_ids=short_ids[rows], attention_mask=short_mask[rows], past_key_values=cache,
                             **generate_kwargs)
    if isinstance(out, torch.Tensor):
        return torch.cat([ids[rows], out[:, short_ids.shape[1]:]], 1)
    out.sequences = torch.cat([ids[rows], out.sequences[:, short_ids.shape[1]:]], 1)  # return_dict_in_generate
    return out


def _new_token_room(model, generate_kwargs: dict) -> int:
    """How many tokens `generate` may add to the cache: its max_new_tokens (0 when unknown: no reservation)."""
    new = generate_kwargs.get("max_new_tokens")
    if new is None:
        config = generate_kwargs.get("generation_config") or model.generation_config
        new = getattr(config, "max_new_tokens", None)
    return int(new or 0)


@contextmanager
def timed_generate_calls(model: torch.nn.Module) -> Iterator[None]:
    """Around a plain `generate`: its first forward is `prefill`, everything else `decode_tokens`."""
    timer = active_timer()
    if timer is None:
        yield
        return
    state = {"calls": 0, "open": None}

    def before(_module, _args, _kwargs):
        if state["calls"] == 0:
            state["open"] = timer.enter_sub("prefill")
        state["calls"] += 1

    def after(_module, _args, _kwargs, _output):
        if state["open"] is not None:
            timer.exit_sub(state["open"])
            state["open"] = None

    handles = [model.register_forward_pre_hook(before, with_kwargs=True),
               model.register_forward_hook(after, with_kwargs=True)]
    try:
        with subphase("decode_tokens"):
            yield
    finally:
        for h in handles:
            h.remove()
