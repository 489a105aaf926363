"""The streaming warm start: teach the answer and "speak once", but not when (the timing is RL's job).

Targets say each event's content once, at a time that ignores the video:
- `random`: after a uniformly random chunk (the model learns to speak once, at a rate that does
  not depend on what it sees);
- `end`: after the last chunk (an offline VideoLLM's habit: answer when the clip is over).
Neither is the due time, so a model that answers on time after GRPO learned it from the reward.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch

from rlvid.rollout.streaming import StreamTrajectory, stream_chunks, teacher_trajectory
from rlvid.trainers.streaming_grpo import streaming_sft_step

SFT_TIMES = ("random", "end")


def sft_targets(vocab, clips: Sequence, chunk_seconds: float, times: str, rng: random.Random) -> list[StreamTrajectory]:
    """One teacher trajectory per clip, each event's content said at a `times` chunk."""
    if times not in SFT_TIMES:
        raise ValueError(f"sft_times must be one of {list(SFT_TIMES)}, got {times!r}")
    out = []
    for clip in clips:
        chunks = stream_chunks(torch.as_tensor(clip.frames), clip.fps, chunk_seconds)
        said: dict[int, str] = {}
        for event in clip.sample.stream_events:
            k = rng.randrange(len(chunks)) if times == "random" else len(chunks) - 1
            said[k] = f"{said[k]} {event.content}" if k in said else event.content
        out.append(teacher_trajectory(vocab, clip.sample.question, chunks, said))
    return out


def streaming_warm_start(model, clips: Sequence, *, steps: int, batch: int = 16, lr: float = 3e-3,
                         chunk_seconds: float = 1.0, times: str = "random", seed: int = 0) -> list[float]:
    """`steps` SFT steps of `batch` clips (cycling) on `times` targets; returns the losses."""
    rng = random.Random(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    losses = []
    for step in range(steps):
        batch_clips = [clips[(step * batch + k) % len(clips)] for k in range(batch)]
        trajs = sft_targets(model.vocab, batch_clips, chunk_seconds, times, rng)
        losses.append(streaming_sft_step(model, optimizer, trajs))
    return losses
