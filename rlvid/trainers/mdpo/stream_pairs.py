"""M-DPO pairs from streaming trajectories: sample a stream's trajectories, rank them by the streaming reward.

For each stream, `num_samples` trajectories are sampled with the rollout's kept KV cache
(rlvid/rollout/streaming.py) and scored by the ranking rewards (`mdpo.metric`, or the run's
rewards: `stream_timing`, `stream_content`, ...) through `rewards.score`; `form_pairs` (the same
rule as every M-DPO pair: distinct transcripts, gap >= `mdpo.min_gap`, largest gaps first, at most
`mdpo.pairs_per_prompt`) picks (chosen, rejected). A trajectory's log-prob is summed over the
policy's own tokens only: its silence decisions, response words and `<end>`, never frames, time
labels or the question (`StreamTrajectory.policy_mask`). The reference log-probs are the
sampling model's, computed once here (`mdpo.reference: precomputed`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from rewards import RewardSet, score
from rlvid.rollout.streaming import StreamSampling, StreamTrajectory, stream_chunks, stream_rollouts
from rlvid.trainers.mdpo.pairs import form_pairs
from rlvid.trainers.streaming_grpo import trajectory_logprobs


@dataclass
class StreamPair:
    """Two trajectories of one stream: the chosen one scored higher by the ranking rewards."""

    clip: Any  # the StreamClip both trajectories watched
    chosen: StreamTrajectory
    rejected: StreamTrajectory
    chosen_score: float
    rejected_score: float
    ref_chosen: float = 0.0  # reference log-probs over the policy tokens
    ref_rejected: float = 0.0

    @property
    def gap(self) -> float:
        return self.chosen_score - self.rejected_score

    @property
    def sample(self):
        return self.clip.sample


def sequence_logps(model, trajs: Sequence[StreamTrajectory]) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed log-probs [B] over each trajectory's policy tokens, and how many there are [B]."""
    logp, mask = trajectory_logprobs(model, trajs)
    return (logp * mask).sum(-1), mask.sum(-1)


@torch.no_grad()
def build_stream_pairs(model, clips: Sequence, reward_set: RewardSet, *, num_samples: int, chunk_seconds: float,
                       sampling: StreamSampling, min_gap: float = 0.0, pairs_per_prompt: int = 0,
                       generator: torch.Generator | None = None) -> list[StreamPair]:
    """Pairs of every clip in `clips` (see the module docstring), with the reference log-probs of `model`."""
    model.eval()
    pairs: list[StreamPair] = []
    for clip in clips:
        chunks = stream_chunks(torch.as_tensor(clip.frames), clip.fps, chunk_seconds)
        trajs = stream_rollouts(model, clip.sample.question, chunks, num_samples, sampling, generator)
        texts = [t.transcript for t in trajs]
        scores = score(reward_set, [clip.sample] * len(trajs), texts).total
        for c, r in form_pairs(scores, min_gap, pairs_per_prompt, texts=texts):
            pairs.append(StreamPair(clip, trajs[c], trajs[r], float(scores[c]), float(scores[r])))
    if pairs:
        logps, _ = sequence_logps(model, [p.chosen for p in pairs] + [p.rejected for p in pairs])
        for i, p in enumerate(pairs):
            p.ref_chosen, p.ref_rejected = float(logps[i]), float(logps[len(pairs) + i])
    return pairs
