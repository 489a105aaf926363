"""What vLLM returns, turned into `Rollouts`: token ids, texts, sampled-token log-probs, truncation.

Texts are decoded with the training tokenizer (`skip_special_tokens=True`), exactly as the hf engine
decodes, so rewards see the same text for the same tokens whichever engine sampled them. A
completion is truncated when vLLM stopped it for length (`finish_reason == "length"`); the server's
chat answers carry no finish reason through TRL's client, so there a completion is truncated when
it reached `max_tokens` without ending in an end-of-sequence token.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from rlvid.rollout.base import Rollouts


class PromptMismatchError(RuntimeError):
    """vLLM tokenised a prompt differently from the training processor: rollouts would not match training."""


def sampled_logprobs(positions, token_ids: Sequence[int]) -> list[float] | None:
    """The log-prob of each sampled token from vLLM's per-position {token_id: Logprob} maps (None if absent)."""
    if positions is None:
        return None
    out = []
    for t, (position, token) in enumerate(zip(positions, token_ids, strict=True)):
        entry = None if position is None else position.get(token)
        if entry is None:
            raise ValueError(f"vLLM returned no log-prob for sampled token {token} at position {t}")
        out.append(float(getattr(entry, "logprob", entry)))
    return out


def parse_request_outputs(outputs: Sequence[Any], num_generations: int, tokenizer) -> Rollouts:
    """`LLM.generate` outputs (one RequestOutput per prompt, `n` completions each) -> grouped Rollouts."""
    prompt_index: list[int] = []
    token_ids: list[list[int]] = []
    logprobs: list[list[float] | None] = []
    truncated: list[bool] = []
    for i, request in enumerate(outputs):
        completions = sorted(request.outputs, key=lambda c: c.index)
        if len(completions) != num_generations:
            raise ValueError(f"prompt {i}: vLLM returned {len(completions)} completions, expected {num_generations}")
        for completion in completions:
            ids = [int(t) for t in completion.token_ids]
            prompt_index.append(i)
            token_ids.append(ids)
            logprobs.append(sampled_logprobs(completion.logprobs, ids))
            truncated.append(completion.finish_reason == "length")
    return _rollouts(prompt_index, token_ids, logprobs, truncated, tokenizer)


def parse_chat_result(result: dict, prompt: int, num_generations: int, tokenizer, max_tokens: int,
                      eos_token_ids: Iterable[int]) -> Rollouts:
    """One TRL `VLLMClient.chat` answer (one conversation, `n` completions) -> Rollouts of prompt `prompt`."""
    completions = [[int(t) for t in ids] for ids in result["completion_ids"]]
    if len(completions) != num_generations:
        raise ValueError(f"prompt {prompt}: the server returned {len(completions)} completions, "
                         f"expected {num_generations}")
    eos = set(eos_token_ids)
    all_logprobs = result.get("logprobs")
    all_token_ids = result.get("logprob_token_ids")
    logprobs: list[list[float] | None] = []
    for k, ids in enumerate(completions):
        if all_logprobs is None:
            logprobs.append(None)
            continue
        row = []
        for t, token in enumerate(ids):
            candidates = dict(zip(all_token_ids[k][t], all_logprobs[k][t], strict=True))
            if token not in candidates:
                raise ValueError(f"prompt {prompt}: the server returned no log-prob for sampled token {token} at {t}")
            value = candidates[token]
            row.append(math.nan if value is None else float(value))  # TRL's client turns NaN into None
        logprobs.append(row)
    truncated = [len(ids) >= max_tokens and (not ids or ids[-1] not in eos) for ids in completions]
    return _rollouts([prompt] * num_generations, completions, logprobs, truncated, tokenizer)


def _rollouts(prompt_index, token_ids, logprobs, truncated, tokenizer) -> Rollouts:
    texts = tokenizer.batch_decode(token_ids, skip_special_tokens=True) if token_ids else []
    have = [lp is not None for lp in logprobs]
    if any(have) and not all(have):
        raise ValueError("vLLM returned log-probs for some completions only")
    return Rollouts(prompt_index, token_ids, texts, logprobs=logprobs if have and all(have) else None,
                    truncated=truncated)


def concat_rollouts(parts: Sequence[Rollouts]) -> Rollouts:
    """Rollouts of consecutive prompt chunks, with `prompt_index` already global in each part."""
    out = Rollouts([], [], [], logprobs=[], truncated=[])
    for part in parts:
        out.prompt_index += part.prompt_index
        out.token_ids += part.token_ids
        out.texts += part.texts
        out.truncated += part.truncated
        if part.logprobs is None:
            out.logprobs = None
        elif out.logprobs is not None:
            out.logprobs += part.logprobs
    if not parts:
        out.logprobs = None
    return out


def check_prompt_ids(expected: Sequence[int], got: Sequence[int], tokenizer, where: str = "prompt 0") -> None:
    """Raise PromptMismatchError, showing where, when vLLM's prompt tokens differ from the training processor's."""
    expected, got = [int(t) for t in expected], [int(t) for t in got]
    if expected == got:
        return
    first = next((i for i, (a, b) in enumerate(zip(expected, got, strict=False)) if a != b), min(len(expected),
                                                                                                   len(got)))
    lo = max(first - 8, 0)
    raise PromptMismatchError(
        f"{where}: vLLM's prompt tokens differ from the training processor's at position {first} "
        f"(lengths {len(got)} vs {len(expected)}): vLLM {tokenizer.decode(got[lo:first + 8])!r} vs training "
        f"{tokenizer.decode(expected[lo:first + 8])!r}. Rollouts would be sampled from a different prompt "
        "than the one trained on; check the model folder's processor config and chat template."
    )
