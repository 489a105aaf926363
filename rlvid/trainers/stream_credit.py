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

Advantages are GRPO's over the trajectories of the stream that reached the same node of the
rollout tree (equal token sequences up to the token): (value - node mean) / node std
(`algos.compute_advantages`, one group per node).
Trajectories that are still silent share one node, so every "speak now or wait" choice is
compared with the others taken from the very same state. (A baseline over all G at the same
chunk mixes in trajectories that already spoke: measured, it rewarded waiting at the due chunk
and did not learn.) A token alone at its node (mostly: every decision after a trajectory's first
response, which no other trajectory shares) has nothing to be compared with; it gets what its
own decision earned (its reward-to-go minus the next decision's: -spurious_penalty for a repeat,
0 for a silence). (With 0 there, nothing held back repeats: the push towards speaking when the
event is visible spread to the decisions after an answer, and measured runs drifted to spamming.)

- The first token of a decision (`<silent>`, or the first word: the choice to speak now) is
  valued by the decision's whole reward-to-go.
- The further words and `<end>` of a response are valued by the reward-to-go of the *word*
  rewards only (`word_rewards`, e.g. `stream_content`): when to speak is not theirs to answer
  for. (Valued by the whole reward, "red circle" was blamed for every early response and the
  answers degenerated to other words: content 0.)
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
    if hasattr(vocab, "chunk_index"):  # a vocabulary whose chunks open with more than one label token (Qwen-VL)
        return vocab.chunk_index(traj.ids)
    labels = {i for i, t in enumerate(vocab.tokens) if t.startswith("<t=")}
    out, chunk = [], -1
    for token in traj.ids:
        chunk += token in labels
        out.append(chunk)
    return out


def reward_to_go(reward_set: RewardSet, samples: Sequence[Any], trajs: Sequence[StreamTrajectory],
                 chunk_ends: Sequence[Sequence[float]], word_rewards: Sequence[str] = ()
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """[B, C] reward earned by decisions j.. of each trajectory, in total and by the `word_rewards` labels only.

    C is the most chunks of any stream; entries past a stream's end are 0.
    """
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
    out = score(reward_set, [samples[i] for i, _ in rows], texts)
    weights = {r.label: r.weight for r in reward_set.rewards if r.label in set(word_rewards)}
    words = [sum(w * (out.scores[label][k] or 0.0) for label, w in weights.items()) for k in range(len(rows))]
    result = []
    for values in (out.total, words):
        full = torch.zeros(len(trajs), dtype=torch.float64)
        before = torch.zeros(len(trajs), width, dtype=torch.float64)
        valid = torch.zeros(len(trajs), width, dtype=torch.bool)
        for (i, j), value in zip(rows, values, strict=True):
            if j < 0:
                full[i] = value
            else:
                before[i, j], valid[i, j] = value, True
        result.append(torch.where(valid, full[:, None] - before, torch.zeros_like(before)))
    return result[0], result[1]


def tree_advantages(rtg: torch.Tensor, word_rtg: torch.Tensor, trajs: Sequence[StreamTrajectory], vocab,
                    num_generations: int, length: int, scale: str = "group",
                    singleton_own: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages [B, length] per next-token position (as `trajectory_logprobs`' [B, T-1]) of the two choices.

    `decision`: at a decision's first token, of speaking or not (valued by `rtg`); `words`: of
    which word (the first word given that it speaks, and every further token; valued by
    `word_rtg`). Each choice is compared with the same choice made at the same tree node of its
    group of G; one alone at its node gets, with `singleton_own`, what its decision itself earned
    (its reward-to-go minus the next decision's), else 0. Elsewhere 0.
    """
    nodes: dict[tuple, int] = {}
    where, groups, values, own = [], [], [], []  # one entry per (choice, position)
    stops = (vocab.silent, vocab.end)
    for i, t in enumerate(trajs):
        index = decision_index(t, vocab)
        for pos, (chunk, policy) in enumerate(zip(index, t.policy_mask, strict=True)):
            if not policy:
                continue
            first = not t.policy_mask[pos - 1] or index[pos - 1] != chunk
            choices = (["decision"] if first else []) + ([] if first and t.ids[pos] in stops else ["words"])
            for choice in choices:
                value = rtg if choice == "decision" else word_rtg
                later = float(value[i, chunk + 1]) if chunk + 1 < value.shape[1] else 0.0
                where.append((choice, i, pos - 1))  # position pos-1 predicts token pos
                key = (choice, i // num_generations, tuple(t.ids[:pos]))
                groups.append(nodes.setdefault(key, len(nodes)))
                values.append(float(value[i, chunk]))
                own.append(float(value[i, chunk]) - later)  # what this decision itself earned
    out = {c: torch.zeros(len(trajs), length, dtype=torch.float32) for c in ("decision", "words")}
    if values:
        group_ids = torch.tensor(groups)
        adv = compute_advantages(torch.tensor(values, dtype=torch.float64), group_ids=group_ids, scale=scale)
        alone = (torch.bincount(group_ids)[group_ids] == 1) & singleton_own
        adv = torch.where(alone, torch.tensor(own, dtype=torch.float64), adv)
        for (choice, i, col), a in zip(where, adv.tolist(), strict=True):
            out[choice][i, col] = a
    return out["decision"], out["words"]


def decision_starts(trajs: Sequence[StreamTrajectory], vocab, length: int) -> torch.Tensor:
    """[B, length] True at the next-token positions that predict a decision's first token."""
    out = torch.zeros(len(trajs), length, dtype=torch.bool)
    for i, t in enumerate(trajs):
        index = decision_index(t, vocab)
        for pos in range(1, len(t.ids)):
            if t.policy_mask[pos] and (not t.policy_mask[pos - 1] or index[pos - 1] != index[pos]):
                out[i, pos - 1] = True
    return out
