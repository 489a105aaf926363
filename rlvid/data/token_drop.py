"""Redundant visual-token dropping: skip frame pairs that barely changed since the last kept one.

TimeChat-Online's differential token drop keeps a visual token only when it differs enough from
the same token of the last kept frame. rlvid applies the idea in units the Hugging Face Qwen
vision towers accept: one temporal patch (a pair of frames for Qwen2.5-VL / Qwen3-VL, i.e. one
row of visual tokens per spatial patch). A pair is dropped when its change from the last kept
pair is below `threshold`:

- `frame`: the change is the mean absolute pixel difference over the whole frame (0-1 scale);
- `patch`: the change is the largest per-patch mean absolute difference, over the patches one
  merged visual token covers (`image_factor` px square): a pair is kept when any token's region
  changed, so a small moving object is not averaged away by a static background.

The first pair is always kept, and at least `min_kept_frames` frames are (the pairs with the
largest change are added back). Dropping happens at decode time, on the sampled frames, and the
drop settings are part of the decode-cache key (`VideoSampling.drop`), so the rollouts, the
log-prob passes, the update and evaluation all see the same kept frames, each with its true
source index and timestamp. Dropping individual tokens is the `token` mode
(rlvid.models.token_prune): the vision tower needs a full (t, h, w) grid, so there the frames all
go through it and the dropped tokens are removed from the LLM's input, keeping their positions.

Timestamps: Qwen3-VL writes each kept pair's true time into the prompt (its processor reads
`VideoMetadata.frames_indices`). Qwen2.5-VL has no per-frame time: its temporal RoPE spaces a
video's pairs evenly (`second_per_grid_ts` is the average spacing of the kept pairs over the
clip), so after a non-uniform drop its temporal positions are an approximation; feeding the
video as a timestamped stream (`data.video.streaming`) writes the true times as text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

MODES = ("none", "frame", "patch", "token")


@dataclass(frozen=True)
class TokenDrop:
    """Drop settings; hashable, part of the decode-cache key."""

    mode: str = "none"
    threshold: float = 0.02
    min_kept_frames: int = 4

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"token_drop.mode must be one of {list(MODES)}, got {self.mode!r}")
        if self.threshold < 0:
            raise ValueError(f"token_drop.threshold must be >= 0, got {self.threshold}")

    @property
    def enabled(self) -> bool:
        """Frames are dropped at decode time (frame / patch); `token` drops in the LLM input instead."""
        return self.mode in ("frame", "patch")


def pair_changes(frames: torch.Tensor, a: int, b: torch.Tensor, frame_factor: int, mode: str,
                 patch: int) -> torch.Tensor:
    """Change of pairs `b` ([n] pair indices) from pair `a`; frames uint8 [T, 3, H, W]."""
    ff = frame_factor
    ref = frames[a * ff:(a + 1) * ff].float().mean(0) / 255.0
    pairs = frames.view(-1, ff, *frames.shape[1:])[b].float().mean(1) / 255.0
    diff = (pairs - ref).abs().mean(1)  # [n, H, W]
    if mode == "frame":
        return diff.flatten(1).mean(1)
    ph, pw = max(1, math.ceil(diff.shape[1] / patch)), max(1, math.ceil(diff.shape[2] / patch))
    pooled = torch.nn.functional.adaptive_avg_pool2d(diff.unsqueeze(1), (ph, pw))
    return pooled.flatten(1).amax(1)


def kept_frames(frames: torch.Tensor, drop: TokenDrop, frame_factor: int = 2, patch: int = 28) -> list[int]:
    """Indices (into `frames`) of the frames to keep, whole temporal pairs, in order."""
    n_frames = frames.shape[0]
    ff = frame_factor
    if not drop.enabled or n_frames % ff or n_frames <= ff:
        return list(range(n_frames))
    n_pairs = n_frames // ff
    keep, last = [0], 0
    best = torch.zeros(n_pairs)  # change at decision time, to add back the most changed pairs if too few are kept
    for i in range(1, n_pairs):
        change = float(pair_changes(frames, last, torch.tensor([i]), ff, drop.mode, patch)[0])
        best[i] = change
        if change >= drop.threshold:
            keep.append(i)
            last = i
    wanted = min(n_pairs, math.ceil(drop.min_kept_frames / ff))
    if len(keep) < wanted:
        best[keep] = -1.0
        extra = torch.argsort(best, descending=True)[: wanted - len(keep)].tolist()
        keep = sorted(keep + extra)
    return [p * ff + j for p in keep for j in range(ff)]
