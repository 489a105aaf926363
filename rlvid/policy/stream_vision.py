"""The vision side of a streaming Qwen-VL rollout: a chunk's frames to pixel patches to visual features, once.

In a streaming rollout the G trajectories of a stream fork into branches, and every branch
feeds the same chunk on top of its own KV cache. The chunk's frames go through the processor
and the vision tower once (`reuse: True`); the branches share the result. Features are reused
only while they are still what the model would compute: the key holds the vision weights'
version counters (an optimizer step bumps them), and a forward that needs gradients through
trainable vision weights computes them afresh (as `models/vision_reuse.py` does for clips).
`stats` counts blocks computed and reused.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from rlvid.data.video import smart_resize

PIXEL_MEMO = 64  # processed frame sets kept (pixels do not depend on the weights)
FEATURE_MEMO = 16  # feature sets kept (dropped whenever the vision weights change)


@dataclass
class BlockVision:
    """One video block of the token sequence: its pixel patches, grid (t, h, w) and features."""

    pixels: torch.Tensor
    grid: tuple[int, int, int]
    embeds: torch.Tensor  # [t * h * w / merge^2, hidden]
    deepstack: list[torch.Tensor] | None  # Qwen3-VL: one [tokens, hidden] per deepstack layer


@dataclass
class VisionStats:
    blocks_computed: int = 0  # blocks run through the vision tower
    blocks_reused: int = 0  # blocks served from an earlier computation (another branch, another trajectory)


@dataclass
class _Memo:
    entries: list[tuple[tuple, torch.Tensor, object]] = field(default_factory=list)

    def get(self, key: tuple, tensor: torch.Tensor):
        for k, t, value in self.entries:
            if k == key and t.shape == tensor.shape and torch.equal(t, tensor):
                return value
        return None

    def put(self, key: tuple, tensor: torch.Tensor, value, limit: int) -> None:
        self.entries.append((key, tensor, value))
        del self.entries[:-limit]


class StreamVision:
    """Processor + vision tower of a Qwen-VL core for stream frames (F, H, W, 3) uint8."""

    def __init__(self, core: torch.nn.Module, processor, reuse: bool = True):
        self.core = core
        self.processor = processor.video_processor
        self.reuse = reuse
        self.merge = int(self.processor.merge_size)
        self.temporal_patch = int(self.processor.temporal_patch_size)
        self.stats = VisionStats()
        self._pixels = _Memo()
        self._features = _Memo()
        self._vision_params = list(core.visual.parameters())

    def pixels(self, frames: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int, int]]:
        """Pixel patches [t*h*w, D] and the grid (t, h, w) of `frames` as one video (whole temporal patches)."""
        frames = torch.as_tensor(frames)
        if len(frames) % self.temporal_patch:
            raise ValueError(f"a stream chunk must hold whole temporal patches ({self.temporal_patch} frames each), "
                             f"got {len(frames)} frames")
        key = ("pixels", _fingerprint(frames))
        found = self._pixels.get(key, frames)
        if found is None:
            out = self.processor(videos=[self.resized(frames)], do_sample_frames=False, do_resize=False,
                                 cap_pixels_per_frame=False, return_tensors="pt")
            found = (out["pixel_values_videos"], tuple(int(x) for x in out["video_grid_thw"][0].tolist()))
            self._pixels.put(key, frames, found, PIXEL_MEMO)
        return found

    def resized(self, frames: torch.Tensor) -> torch.Tensor:
        """(F, 3, h, w) uint8 frames at one size per frame shape, whatever the chunk's length.

        The video processors size a whole video from its pixel budget (Qwen3-VL: frames x height x width),
        so a 4-frame chunk would come out smaller than a 2-frame one; a stream's frames are resized here
        instead (as the decoder does for clips, `rlvid.data.video`) to the processor's per-frame bounds.
        """
        _, height, width, _ = frames.shape
        h, w = self.frame_size(height, width)
        x = frames.permute(0, 3, 1, 2)
        if (h, w) == (height, width):
            return x.contiguous()
        x = torch.nn.functional.interpolate(x.float(), size=(h, w), mode="bicubic", antialias=True, align_corners=False)
        return x.round().clamp(0, 255).to(torch.uint8)

    def frame_size(self, height: int, width: int) -> tuple[int, int]:
        """The (height, width) frames of that size are resized to: multiples of patch x merge, within the
        processor's pixel bounds for one frame."""
        size = self.processor.size
        factor = int(self.processor.patch_size) * self.merge
        return smart_resize(height, width, factor, int(size["shortest_edge"]), int(size["longest_edge"]))

    def tokens_per_patch(self, frames: torch.Tensor) -> int:
        """Visual tokens of one temporal patch of frames shaped like `frames` (F, H, W, 3)."""
        h, w = self.frame_size(*frames.shape[1:3])
        return (h // int(self.processor.patch_size)) * (w // int(self.processor.patch_size)) // self.merge ** 2

    def blocks(self, frames: torch.Tensor, patches: list[int]) -> list[BlockVision]:
        """`frames` cut into blocks of `patches[k]` temporal patches each, with their features."""
        pixels, (t, h, w) = self.pixels(frames)
        if sum(patches) != t:
            raise ValueError(f"the token sequence holds {sum(patches)} temporal patches of video but its frames "
                             f"make {t}")
        grids = [(n, h, w) for n in patches]
        pieces = list(torch.split(pixels, [n * h * w for n in patches]))
        embeds, deepstack = self._vision(pixels, grids)
        return [BlockVision(p, g, e, d) for p, g, e, d in zip(pieces, grids, embeds, deepstack, strict=True)]

    def _vision(self, pixels: torch.Tensor, grids: list[tuple[int, int, int]]) -> tuple[list, list]:
        needs_grad = torch.is_grad_enabled() and any(p.requires_grad for p in self._vision_params)
        key = ("features", _fingerprint(pixels), tuple(grids), tuple(p._version for p in self._vision_params))
        if self.reuse and not needs_grad:
            found = self._features.get(key, pixels)
            if found is not None:
                self.stats.blocks_reused += len(grids)
                return found
        device = self._vision_params[0].device
        grid = torch.tensor(grids, dtype=torch.long, device=device)
        out = self.core.get_video_features(pixels.to(device), grid, return_dict=True)
        embeds = list(out.pooler_output)
        sizes = [len(e) for e in embeds]
        layers = getattr(out, "deepstack_features", None)
        per_block = [list(x) for x in zip(*[torch.split(d, sizes) for d in layers], strict=True)] if layers else None
        found = (embeds, per_block or [None] * len(grids))
        self.stats.blocks_computed += len(grids)
        if self.reuse and not needs_grad:
            self._features.put(key, pixels, found, FEATURE_MEMO)
        return found


def _fingerprint(x: torch.Tensor) -> tuple:
    """Shape plus the sum of ~1k evenly strided values: a cheap filter before the exact `torch.equal`."""
    flat = x.reshape(-1)
    step = max(1, flat.numel() // 1024)
    return (tuple(x.shape), float(flat[::step].double().sum()))
