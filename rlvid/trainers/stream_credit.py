"""Per-decision credit for streaming GRPO: each decision is credited with what it and later decisions earned.

A streaming trajectory makes one decision per chunk (stay silent, or say something). With one
reward per trajectory, every decision of it gets the same advantage, so a response said on time
after seven lucky silences is credited to those silences and an early blurt is blamed on the
decisions before it (the noise that kept trajectory-level GRPO near its start, docs/streaming.md).

Here the trajectory's reward is split over its decisions by scoring transcript prefixes with the
same `rewards.score`: the reward-to-go of decision j is R(whole transcript) - R(responses said
before chunk j). For `stream_timing` and `stream_content` this is exactly the sum of what the
responses of chunks j.. earned (their matching is causal: a response's credit or penalty depends
only on the responses before it). Any other reward still gets a well-defined marginal split.

The advantage of decision j is GRPO's over the trajectories of the stream that reached the same
node of the rollout tree (equal token sequences up to decision j): (reward-to-go - node mean) /
node std (`algos.compute_advantages`, one group per node). Trajectories that are still silent
share one node, so every "speak now or wait" decision is compared with the others taken from
the very same state. (A baseline over all G at the same chunk mixes in trajectories that already
spoke: measured, it rewarded waiting at the due chunk and did not learn.) All tokens of a
decision (its silence, or its words and `<end>`) carry its advantage.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from rewards import RewardSet, score
from rlvid.algos.advantages import compute_advantages
from rlvid.data.stream_transcript import format_transcript
from rlvid.rollout.streaming import StreamTrajectory


def decision_index(traj: StreamTrajectory, vocab) -> list[int]:
    """For each position of `traj.ids`, the chunk whose decision it belongs to (-1 before the first chunk)."""
    labels = {i for i, t in enumerate(vocab.tokens) if t.startswith("<t=")}
    out, chunk = [], -1
    for token in traj.ids:
        chunk += token in labels
        out.append(chunk)
    return out


def reward_to_go(reward_set: RewardSet, samples: Sequence[Any], trajs: Sequence[StreamTrajectory],
                 chunk_ends: Sequence[Sequence[float]]) -> torch.Tensor:
    """[B, C] reward earned by decisions j.. of each trajectory (C: most chunks of any stream; 0 past its end)."""
    if not (len(samples) == len(trajs) == len(chunk_ends)):
        raise ValueError(f"{len(samples)} samples, {len(trajs)} trajectories, {len(chunk_ends)} chunk lists")
    width = max(len(e) for e in chunk_ends)
    texts, rows = [], []
    for i, (t, ends) in enumerate(zip(trajs, chunk_ends, strict=True)):
        texts.append(t.transcript)
        rows.append((i, -1))
        for j, end in enumerate(ends):
            texts.append(format_transcript([r for r in t.responses if r.time < end - 1e-6]))
            rows.append((i, j))
    scored = score(reward_set, [samples[i] for i, _ in rows], texts).total
    full = torch.zeros(len(trajs), dtype=torch.float64)
    before = torch.zeros(len(trajs), width, dtype=torch.float64)
    valid = torch.zeros(len(trajs), width, dtype=torch.bool)
    for (i, j), value in zip(rows, scored, strict=True):
        if j < 0:
            full[i] = value
        else:
            before[i, j], valid[i, j] = value, True
    return torch.where(valid, full[:, None] - before, torch.zeros_like(before))


def decision_advantages(rtg: torch.Tensor, trajs: Sequence[StreamTrajectory], vocab, num_generations: int,
                        scale: str = "group") -> torch.Tensor:
    """[B, C] GRPO advantages of each decision against the decisions taken from the same tree node.

    Two trajectories of a group are at the same node before decision j when their token
    sequences are equal up to it (they saw the same frames and said the same things), so their
    reward-to-go differ only by what they chose from there: an exact comparison of actions. A
    decision alone at its node gets 0 (no comparison).
    """
    b, c = rtg.shape
    nodes: dict[tuple, int] = {}
    groups = torch.full((b, c), -1, dtype=torch.long)
    for i, t in enumerate(trajs):
        index = decision_index(t, vocab)
        firsts = {}
        for pos, (chunk, policy) in enumerate(zip(index, t.policy_mask, strict=True)):
            if policy and chunk not in firsts:
                firsts[chunk] = pos
        for j, pos in firsts.items():
            groups[i, j] = nodes.setdefault((i // num_generations, tuple(t.ids[:pos])), len(nodes))
    flat = groups.flatten()
    free = flat < 0  # chunks a stream does not have: their own singleton groups
    flat[free] = len(nodes) + torch.arange(int(free.sum()))
    return compute_advantages(rtg.flatten(), group_ids=flat, scale=scale).reshape(b, c)


def token_advantages(advantages: torch.Tensor, trajs: Sequence[StreamTrajectory], vocab, length: int) -> torch.Tensor:
    """[B, length] advantage per next-token position (as `trajectory_logprobs`' [B, T-1]): its decision's."""
    out = torch.zeros(len(trajs), length, dtype=torch.float32)
    for i, t in enumerate(trajs):
        index = torch.tensor(decision_index(t, vocab)[1:], dtype=torch.long)  # position k predicts token k+1
        n = len(index)
        out[i, :n] = torch.where(index >= 0, advantages[i, index.clamp(min=0)].float(), torch.zeros(n))
    return out
