"""Differential token dropping over a stream (TimeChat-Online's DTD), one chunk at a time.

`token_prune.token_keep_mask` drops a visual token that barely changed since it was last kept,
inside one finished video. A stream has no finished video: each chunk arrives on its own, so
the comparison must carry over from the previous chunk. `StreamDrop.keep` does that: it holds,
per spatial token, the pixels of the last temporal patch where the token was kept, and a token
of a new temporal patch is kept when its pixels moved by at least `threshold` (mean absolute
difference on a 0-1 scale) from that reference. The stream's first temporal patch is kept
whole. The rule is causal: the keep mask of a chunk depends only on it and the chunks before,
so a rollout that feeds chunk by chunk and a trainer that recomputes the whole stream at once
drop the same tokens. (No `min_kept_frames` top-up: that needs the whole video, i.e. the future.)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rlvid.models.token_prune import TokenPruneSettings


@dataclass
class StreamDrop:
    """The threshold and the processor's patch layout; `keep` returns the updated reference with the mask."""

    settings: TokenPruneSettings

    @classmethod
    def from_processor(cls, processor, threshold: float) -> StreamDrop:
        return cls(TokenPruneSettings.from_processor(processor, threshold, 0))

    def keep(self, pixels: torch.Tensor, grid: tuple[int, int, int], reference: torch.Tensor | None
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """Bool [t * h * w / merge^2] over one block's visual tokens (vision-tower order), and the new reference.

        `pixels`: the processor's patches of the block, [t*h*w, C * temporal_patch * p * p], ordered
        (t, h / merge, w / merge, merge, merge). `reference`: what the previous call returned (None at the
        stream's start).
        """
        s = self.settings
        t, h, w = grid
        m2 = s.merge ** 2
        channels = len(s.image_std)
        x = pixels.detach().float().reshape(t, h * w // m2, m2, channels, s.temporal_patch, -1).mean(4)
        std = torch.tensor(s.image_std, dtype=x.dtype, device=x.device).view(1, channels, 1)
        keep = torch.ones(t, x.shape[1], dtype=torch.bool, device=x.device)
        last = reference
        for i in range(t):
            if last is None:
                last = x[i]
                continue
            change = ((x[i] - last).abs() * std).mean((1, 2, 3))  # [tokens] on a 0-1 pixel scale
            keep[i] = change >= s.threshold
            last = torch.where(keep[i].view(-1, 1, 1, 1), x[i], last)
        return keep.flatten(), last
