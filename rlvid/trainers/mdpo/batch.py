"""Pairs -> model inputs, and the per-pair sequence log-probs DPO compares.

A micro-batch of P pairs is ONE forward of 2P rows: the P chosen completions first, then the P
rejected ones, each after its prompt with the video. Each distinct prompt of a step goes through
the processor once (`Policy.encode`, the same path as GRPO) and its video is decoded once (the
builder's cache); its chosen and rejected rows reuse that encoding. With the shared prefix on
(`trainer.shared_prefix`, the default) the rows of a prompt also share its forward: the prompt and
its video go through the LLM and the vision tower once for the chosen row, the rejected row (and so
the SFT term on the chosen one) and every other pair of that prompt in the micro-batch, in the
reference pass and in the update (with gradients), exactly as the plain 2P-row forward
(tests/test_mdpo_shared_prefix.py).

Sequence log-prob = the sum over the completion's tokens of log pi(token) at temperature 1 (the
DPO definition); the chosen completion's token-mean NLL feeds VidChain's SFT term.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rlvid.policy import Policy, SequenceBatch
from rlvid.trainers.loop import micro_batches
from rlvid.trainers.mdpo.pairs import Pair


@dataclass
class PairBatch:
    """One micro-batch: 2P rows (chosen rows 0..P-1, rejected rows P..2P-1) and the positions of its pairs."""

    seq: SequenceBatch
    pairs: list[int]  # positions of the pairs in the step's list

    @property
    def num_pairs(self) -> int:
        return len(self.pairs)


@dataclass
class SequenceLogps:
    """Per-pair sums of completion log-probs, and the chosen completion's token-mean NLL ([P] each)."""

    chosen: torch.Tensor
    rejected: torch.Tensor
    chosen_nll: torch.Tensor


def completion_ids(pair: Pair, tokenizer) -> tuple[list[int], list[int]]:
    """Chosen and rejected token ids: as sampled when stored, else the text tokenised with eos appended."""
    def ids(stored: list[int] | None, text: str) -> list[int]:
        if stored:
            return list(stored)
        return tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]

    return ids(pair.chosen_ids, pair.chosen), ids(pair.rejected_ids, pair.rejected)


def pair_micro_batches(policy: Policy, pairs: list[Pair], pairs_per_micro_batch: int, *,
                       shared_prefix: bool | None = None) -> list[PairBatch]:
    """The pairs in micro-batches of at most `pairs_per_micro_batch` pairs (2x that many rows).

    `shared_prefix` (default: the policy's setting) lays the rows out so that each distinct prompt of a
    micro-batch is run once for all of its chosen and rejected rows."""
    if not pairs:
        return []
    tok = policy.tokenizer
    keys = list(dict.fromkeys(p.prompt_id for p in pairs))
    first = {p.prompt_id: p for p in reversed(pairs)}
    encoded = dict(zip(keys, policy.encode([first[k].prompt_item() for k in keys]), strict=True))
    ids = [completion_ids(p, tok) for p in pairs]
    out = []
    for rows in micro_batches(len(pairs), pairs_per_micro_batch):
        rows = list(rows)
        prompts = [encoded[pairs[r].prompt_id] for r in rows]
        seq = policy.batch(prompts + prompts, [ids[r][0] for r in rows] + [ids[r][1] for r in rows],
                           shared_prefix=shared_prefix)
        out.append(PairBatch(seq, rows))
    return out


def sequence_logps(policy: Policy, batch: PairBatch, grad: bool = False) -> SequenceLogps:
    """One forward of the batch's 2P rows (with gradients when `grad`)."""
    logp, mask = policy.logprobs(batch.seq, grad=grad)
    summed = (logp * mask).sum(1)
    p = batch.num_pairs
    chosen_tokens = mask[:p].sum(1).clamp(min=1)
    return SequenceLogps(summed[:p], summed[p:], -summed[:p] / chosen_tokens)


def reference_logps(policy: Policy, pairs: list[Pair], pairs_per_micro_batch: int) -> list[tuple[float, float]]:
    """(chosen, rejected) sequence log-probs of each pair under `policy`, in eval mode, without gradients."""
    model = policy.model
    was_training = model.training
    model.eval()
    out: list[tuple[float, float]] = []
    try:
        for batch in pair_micro_batches(policy, pairs, pairs_per_micro_batch):
            s = sequence_logps(policy, batch)
            out += list(zip(s.chosen.tolist(), s.rejected.tolist(), strict=True))
    finally:
        model.train(was_training)
    return out
