"""Streaming rollouts of many streams and their G trajectories in one batched forward per step.

`rlvid.rollout.streaming.stream_rollouts` runs one forward per branch of the rollout tree: the
tiny model spends its time in per-call overhead, and the sign-flipped control, whose trajectories
speak after every chunk and so never share a cache, was the slowest run (docs/streaming.md).
Here every branch of every stream is one *row* of a single KV cache, and all rows advance in
lockstep: after each chunk is fed, rows decide token by token (`<silent>`/`<end>`, or a word,
then the next word) until every row has stopped. Each lockstep step is one
`model.forward_batch(embeds, cache, attention_mask, position_ids)` call.

Rows hold different numbers of tokens (the question's length, the words said so far), so the
cache has holes: each row's new tokens are left-padded within the step, the padding is masked
out of attention, and positions are given explicitly, so a row computes exactly what it would
alone. A fork (members of a row sampled different tokens) copies the row (`Cache.reorder_cache`
with a repeated index), never recomputes it: every position of every tree is still computed
once (`tokens_fed` counts the real tokens only; tests/test_streaming_batched.py checks both
that and that the log-probs equal a full recompute).

The model needs, besides the streaming interface (`vocab`, `embed`), `forward_batch`; models
that offer only `forward(embeds, cache)` use the per-branch rollout (`rollouts_for`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from transformers import DynamicCache

from rlvid.rollout.streaming import (
    StreamChunk,
    StreamSampling,
    StreamTrajectory,
    chunk_ids,
    sample_choices,
    stream_rollouts,
    take_choice,
)


@dataclass
class _Row:
    stream: int
    members: list[int]  # trajectories (global indices) sharing this row of the cache
    pending: list[int]  # tokens of the members' sequences not yet fed
    position: int = 0  # position id of the row's next token
    words: list[int] = field(default_factory=list)  # the response being said, if any
    deciding: bool = False


class _Batch:
    """One KV cache whose batch rows are the rows of all streams' rollout trees."""

    def __init__(self, model, rows: list[_Row]):
        self.model, self.rows = model, rows
        self.cache = DynamicCache()
        self.valid = torch.zeros(len(rows), 0, dtype=torch.long)  # which cache slots hold real tokens
        self.logits: list[torch.Tensor | None] = [None] * len(rows)

    def feed(self, tokens: Sequence[list[int]], frames: Sequence[torch.Tensor | None]) -> None:
        """Feed `tokens[r]` (with `frames[r]` for its `<frame>`s) to row r; rows with no tokens are padding."""
        width = max(len(t) for t in tokens)
        if width == 0:
            return
        model, hidden = self.model, None
        pieces = []
        for ids, f in zip(tokens, frames, strict=True):
            e = model.embed(ids, f if f is not None and len(f) else None)[0] if ids else None
            hidden = e.shape[-1] if e is not None else hidden
            pieces.append(e)
        embeds = torch.zeros(len(tokens), width, hidden, dtype=next(p for p in pieces if p is not None).dtype)
        new = torch.zeros(len(tokens), width, dtype=torch.long)
        positions = torch.zeros(len(tokens), width, dtype=torch.long)
        for r, (row, e) in enumerate(zip(self.rows, pieces, strict=True)):
            if e is None:
                continue
            n = len(e)
            embeds[r, width - n:] = e
            new[r, width - n:] = 1
            positions[r, width - n:] = torch.arange(row.position, row.position + n)
            row.position += n
        mask = torch.cat([self.valid, new], 1)
        logits, self.cache = model.forward_batch(embeds, self.cache, mask, positions)
        self.valid = mask
        for r, ids in enumerate(tokens):
            if ids:
                self.logits[r] = logits[r, -1]

    def fork(self, parents: list[int], rows: list[_Row]) -> None:
        """New rows `rows`, row k a copy of the cache row `parents[k]`."""
        index = torch.tensor(parents, dtype=torch.long)
        if parents != list(range(len(self.rows))):
            self.cache.reorder_cache(index)
            self.valid = self.valid[index]
        self.logits = [self.logits[p] for p in parents]
        self.rows = rows


@torch.no_grad()
def batched_stream_rollouts(model, questions: Sequence[str], streams: Sequence[Sequence[StreamChunk]], n: int,
                            sampling: StreamSampling, generator: torch.Generator | None = None
                            ) -> list[StreamTrajectory]:
    """`n` trajectories per stream (stream-major: stream s owns trajectories s*n .. s*n+n-1), as
    `stream_rollouts` makes them, with one `forward_batch` call per lockstep step for all of them."""
    if len(questions) != len(streams):
        raise ValueError(f"{len(questions)} questions for {len(streams)} streams")
    vocab = model.vocab
    trajs: list[StreamTrajectory] = []
    rows = []
    for s, (question, chunks) in enumerate(zip(questions, streams, strict=True)):
        prompt = [vocab.bos] + vocab.encode(question)
        frames = torch.cat([c.frames for c in chunks]) if chunks else torch.zeros(0, 1, 1, 3, dtype=torch.uint8)
        trajs += [StreamTrajectory(list(prompt), [False] * len(prompt), [0.0] * len(prompt), frames)
                  for _ in range(n)]
        rows.append(_Row(s, list(range(s * n, s * n + n)), list(prompt)))
    batch = _Batch(model, rows)
    for c in range(max((len(ch) for ch in streams), default=0)):
        tokens, frames = [], []
        for row in batch.rows:
            chunk = streams[row.stream][c] if c < len(streams[row.stream]) else None
            ids = chunk_ids(vocab, chunk) if chunk is not None else []
            if chunk is not None:
                for m in row.members:
                    for token in ids:
                        trajs[m].append(token, False)
            tokens.append(row.pending + ids if chunk is not None else [])
            frames.append(chunk.frames if chunk is not None else None)
            row.pending, row.deciding = ([], True) if chunk is not None else (row.pending, False)
        batch.feed(tokens, frames)
        while any(row.deciding for row in batch.rows):
            _decide_step(batch, trajs, streams, c, sampling, generator)
    return trajs


def _decide_step(batch: _Batch, trajs: list[StreamTrajectory], streams, c: int, sampling: StreamSampling,
                 generator: torch.Generator | None) -> None:
    """Every deciding row samples one token per member; rows split by token; speaking rows feed their word."""
    vocab = batch.model.vocab
    parents, rows, feeds = [], [], []
    for r, row in enumerate(batch.rows):
        if not row.deciding:
            parents.append(r)
            rows.append(row)
            feeds.append([])
            continue
        logp, groups = sample_choices(batch.logits[r], len(row.members), row.words, vocab, sampling, generator)
        now = streams[row.stream][c].end
        for token, members in groups.items():
            members = [row.members[i] for i in members]
            words, pending, stop = take_choice(token, members, row.words, logp, trajs, vocab, sampling, now)
            child = _Row(row.stream, members, pending, row.position, words, not stop)
            feeds.append([] if stop else child.pending)  # a stopped row feeds its choice with the next chunk
            if not stop:
                child.pending = []
            parents.append(r)
            rows.append(child)
    batch.fork(parents, rows)
    batch.feed(feeds, [None] * len(feeds))


def rollouts_for(model, questions: Sequence[str], streams: Sequence[Sequence[StreamChunk]], n: int,
                 sampling: StreamSampling, generator: torch.Generator | None = None) -> list[StreamTrajectory]:
    """Batched rollouts when the model has `forward_batch`, else one `stream_rollouts` per stream."""
    if hasattr(model, "forward_batch"):
        return batched_stream_rollouts(model, questions, streams, n, sampling, generator)
    out: list[StreamTrajectory] = []
    for question, chunks in zip(questions, streams, strict=True):
        out += stream_rollouts(model, question, chunks, n, sampling, generator)
    return out
