"""Streaming rollouts: the video arrives chunk by chunk and the policy decides, after each chunk,
to stay silent or to speak.

The sequence a trajectory builds is

    <bos> question  <t=0.0s> <frame>..  D  <t=1.0s> <frame>..  D ...

where each decision D is the policy's own: `<silent>` (or `<end>`: nothing said), or words ended
by `<end>` / `<silent>` (a response, said at the end time of the chunk just seen). Frames and
time labels come from the stream; only decision tokens are the policy's (`policy_mask`).

The KV cache is kept across chunks: a chunk is fed once on top of the cache, never re-prefilled.
The G trajectories of one stream form a tree: they share one cache while their sequences are
equal and fork (the cache is copied) where their sampled tokens first differ, so every position
of the tree is computed exactly once (`TinyStreamLM.tokens_fed` counts them; tests check it).
The model is anything with `vocab`, `embed(ids, frames)` and `forward(embeds, cache)`, as
`rlvid.models.stream_lm.TinyStreamLM` or `rlvid.policy.stream_vl.QwenVLStream` (a Qwen-VL policy).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from transformers import DynamicCache

from rlvid.data.stream_transcript import StreamResponse, format_transcript
from rlvid.data.streaming import timestamp_label


@dataclass
class StreamChunk:
    """The frames of one chunk (F, H, W, 3 uint8) covering [start, end) seconds."""

    start: float
    end: float
    frames: torch.Tensor


@dataclass
class StreamSampling:
    """`temperature` 0 decodes greedily (evaluation)."""

    temperature: float = 1.0
    max_response_tokens: int = 4


@dataclass
class StreamTrajectory:
    """One rollout: the whole token sequence (frames as `<frame>`), what the policy chose, what it said."""

    ids: list[int]
    policy_mask: list[bool]
    rollout_logp: list[float]  # log-prob (temperature 1) of each policy token when sampled; 0 elsewhere
    frames: torch.Tensor  # every frame of the stream, in the order of the `<frame>` tokens
    responses: list[StreamResponse] = field(default_factory=list)

    @property
    def transcript(self) -> str:
        return format_transcript(self.responses)

    def append(self, token: int, policy: bool, logp: float = 0.0) -> None:
        self.ids.append(token)
        self.policy_mask.append(policy)
        self.rollout_logp.append(logp)


@dataclass
class _Branch:
    members: list[int]  # trajectories sharing this cache
    cache: DynamicCache
    pending: list[int]  # tokens in the members' sequences not yet fed to the cache
    logits: torch.Tensor | None = None  # next-token logits after everything fed
    words: list[int] = field(default_factory=list)  # the response being said, if any


def stream_chunks(frames: torch.Tensor, fps: float, chunk_seconds: float) -> list[StreamChunk]:
    """Consecutive chunks of `chunk_seconds` of frames sampled at `fps` (the last may be shorter)."""
    per = round(chunk_seconds * fps)
    if per < 1:
        raise ValueError(f"stream_chunk_seconds {chunk_seconds} holds no frame at {fps} fps")
    frames = torch.as_tensor(frames)
    return [StreamChunk(i / fps, min(i + per, len(frames)) / fps, frames[i:i + per])
            for i in range(0, len(frames), per)]


def chunk_ids(vocab, chunk: StreamChunk) -> list[int]:
    """The tokens that introduce a chunk: its start-time label, then one `<frame>` per frame (or the vocabulary's
    own layout: a Qwen-VL policy reads a chunk as text and a video, rlvid/policy/stream_vl_vocab.py)."""
    if hasattr(vocab, "chunk_ids"):
        return vocab.chunk_ids(chunk)
    return [vocab.ids[timestamp_label(chunk.start)]] + [vocab.frame] * len(chunk.frames)


def allowed_logits(logits: torch.Tensor, vocab) -> torch.Tensor:
    """`logits` with the tokens the policy may never choose (pad, bos, frame, time labels) at -inf."""
    banned = getattr(vocab, "_banned", None)
    if banned is None:
        banned = torch.tensor([i for i, t in enumerate(vocab.tokens)
                               if i in (vocab.pad, vocab.bos, vocab.frame) or t.startswith("<t=")])
        vocab._banned = banned
    out = logits.clone()
    out[..., banned] = float("-inf")
    return out


def greedy_choice(logp: torch.Tensor, vocab, first: bool) -> int:
    """The greedy token for next-token log-probs `logp` [V] (allowed tokens only).

    At a decision's first token (`first`) the choice is the policy's two-level one (as the
    trainer factors it, `factored_logprobs`): speak when P(a word) > P(`<silent>` or `<end>`),
    then the likeliest word. A plain argmax over tokens would speak whenever one word beats
    `<silent>` alone, even when staying quiet (`<silent>` + `<end>`) is more likely.
    """
    if not first:
        return int(logp.argmax())
    stops = logp[[vocab.silent, vocab.end]]
    words = logp.clone()
    words[[vocab.silent, vocab.end]] = float("-inf")
    if torch.logsumexp(stops, 0) >= torch.logsumexp(words, 0):
        return vocab.silent if stops[0] >= stops[1] else vocab.end
    return int(words.argmax())


@torch.no_grad()
def stream_rollouts(model, question: str, chunks: list[StreamChunk], n: int, sampling: StreamSampling,
                    generator: torch.Generator | None = None) -> list[StreamTrajectory]:
    """`n` trajectories of the policy watching `chunks` after `question`, sharing their common prefixes."""
    vocab = model.vocab
    prompt = [vocab.bos] + vocab.encode(question)
    frames = torch.cat([c.frames for c in chunks]) if chunks else torch.zeros(0, 1, 1, 3, dtype=torch.uint8)
    trajs = [StreamTrajectory(list(prompt), [False] * len(prompt), [0.0] * len(prompt), frames) for _ in range(n)]
    branches = [_Branch(list(range(n)), DynamicCache(), list(prompt))]
    for chunk in chunks:
        ids = chunk_ids(vocab, chunk)
        for t in trajs:
            for token in ids:
                t.append(token, False)
        decided = []
        for branch in branches:
            _feed(model, branch, ids, chunk.frames)
            decided += _decide(model, branch, trajs, chunk.end, sampling, generator)
        branches = decided
    return trajs


def _feed(model, branch: _Branch, ids: list[int], frames: torch.Tensor | None = None) -> None:
    """Feed the branch's pending tokens and `ids` on top of its cache; keep the last logits."""
    tokens = branch.pending + ids
    embeds = model.embed(tokens, frames if frames is not None and len(frames) else None)
    logits, branch.cache = model(embeds, branch.cache)
    branch.logits, branch.pending = logits[0, -1], []


def _decide(model, branch: _Branch, trajs: list[StreamTrajectory], now: float, sampling: StreamSampling,
            generator: torch.Generator | None) -> list[_Branch]:
    """Sample each member's next token; members that sampled the same token stay together."""
    logp, groups = sample_choices(branch.logits, len(branch.members), branch.words, model.vocab, sampling, generator)
    out = []
    for k, (token, members) in enumerate(groups.items()):
        cache = branch.cache if k == len(groups) - 1 else copy.deepcopy(branch.cache)
        members = [branch.members[i] for i in members]
        words, pending, stop = take_choice(token, members, branch.words, logp, trajs, model.vocab, sampling, now)
        child = _Branch(members, cache, pending, words=words)
        if stop:
            out.append(child)
        else:
            _feed(model, child, [])
            out += _decide(model, child, trajs, now, sampling, generator)
    return out


def sample_choices(logits: torch.Tensor, n: int, words: list[int], vocab, sampling: StreamSampling,
                   generator: torch.Generator | None) -> tuple[torch.Tensor, dict[int, list[int]]]:
    """One token for each of the `n` members at a decision (greedy: all alike): the log-probs over the allowed
    tokens, and {token: indices of the members that took it}. `words`: the response said so far at this node."""
    logits = logits.float()
    logp = torch.log_softmax(allowed_logits(logits, vocab), -1)
    if sampling.temperature == 0:
        picks = [greedy_choice(logp, vocab, not words)] * n
    else:
        probs = torch.softmax(allowed_logits(logits / sampling.temperature, vocab), -1)
        picks = torch.multinomial(probs, n, replacement=True, generator=generator).tolist()
    groups: dict[int, list[int]] = {}
    for i, token in enumerate(picks):
        groups.setdefault(token, []).append(i)
    return logp, groups


def take_choice(token: int, members: list[int], words: list[int], logp: torch.Tensor, trajs: list[StreamTrajectory],
                vocab, sampling: StreamSampling, now: float) -> tuple[list[int], list[int], bool]:
    """Record the chosen `token` in the `members`' trajectories; returns the response words after it, the tokens
    to feed next (the choice, plus `<end>` when the response reaches its length cap) and whether the decision
    ended (silence, `<end>`, or the cap; a finished response is stamped at `now`)."""
    for m in members:
        trajs[m].append(token, True, float(logp[token]))
    words, pending = list(words), [token]
    stop = token in (vocab.silent, vocab.end)
    if not stop:
        words.append(token)
    if not stop and len(words) >= sampling.max_response_tokens:
        for m in members:  # the response is cut: `<end>` is the stream's, not a choice
            trajs[m].append(vocab.end, False)
        pending.append(vocab.end)
        stop = True
    if stop:
        if words:
            for m in members:
                trajs[m].responses.append(StreamResponse(now, vocab.decode(words)))
        words = []
    return words, pending, stop


def teacher_trajectory(vocab, question: str, chunks: list[StreamChunk], said: dict[int, str]) -> StreamTrajectory:
    """The trajectory that says `said[k]` after chunk k and is silent elsewhere (SFT targets, tests)."""
    prompt = [vocab.bos] + vocab.encode(question)
    frames = torch.cat([c.frames for c in chunks])
    t = StreamTrajectory(list(prompt), [False] * len(prompt), [0.0] * len(prompt), frames)
    for k, chunk in enumerate(chunks):
        for token in chunk_ids(vocab, chunk):
            t.append(token, False)
        words = vocab.encode(said[k]) if k in said else []
        for token in words + [vocab.end if words else vocab.silent]:
            t.append(token, True)
        if words:
            t.responses.append(StreamResponse(chunk.end, said[k]))
    return t
