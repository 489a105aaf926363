"""Per-token visual dropping (`data.video.token_drop.mode: token`): the LLM sees only the visual tokens that changed.

TimeChat-Online's differential token drop, at its own granularity: one visual token is one merged
patch of one temporal patch (a frame pair on Qwen2.5-VL / Qwen3-VL). A token is dropped when the
pixels it covers changed by less than `threshold` (mean absolute difference on a 0-1 scale) from
the same spatial token of the last temporal patch where it was kept. The first temporal patch is
kept whole, and at least `min_kept_frames` frames' worth of tokens are kept (the most changed
dropped tokens are added back).

The vision tower still encodes every frame (it needs the full (t, h, w) grid); what shrinks is
the LLM sequence, i.e. the prefill, the KV cache every decoded token attends to, the log-prob
passes and the update. Kept tokens keep their positions: the 3-D mRoPE positions are computed by
the model's own `get_rope_index` on the full sequence and then gathered, so a kept token says
where and when it was, on Qwen2.5-VL too (unlike dropping whole frame pairs, after which its
temporal RoPE re-spaces the pairs evenly).

How it reaches the model: the keep mask is a pure function of the processor's pixel patches, so
both ends compute it from the pixels they are given. `compact_inputs` removes the dropped
placeholder tokens from a batch and returns explicit positions; a filter on the vision seam
(`VisionFeatureCache.pruner`, set by `rlvid.policy.Policy`) removes the same tokens' features (and
Qwen3-VL's deepstack features). Every forward that carries video must take `compact_inputs`: the
shared-prefill generation, the shared-prefix log-prob pass and `pruned_forward` do; the plain
`generate` does not, and `Policy.generate` routes around it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from rlvid.models.vision_reuse import find_vl_core

TOKEN_KEYS = ("input_ids", "attention_mask", "mm_token_type_ids")
ROPE_KEYS = ("image_grid_thw", "video_grid_thw", "second_per_grid_ts")


@dataclass(frozen=True)
class TokenPruneSettings:
    threshold: float
    min_kept_frames: int
    image_std: tuple[float, ...]  # the processor's normalisation, to read changes on a 0-1 pixel scale
    temporal_patch: int
    merge: int

    @classmethod
    def from_processor(cls, processor, threshold: float, min_kept_frames: int) -> TokenPruneSettings:
        vp = getattr(processor, "video_processor", None) or processor.image_processor
        std = vp.image_std if isinstance(vp.image_std, (list, tuple)) else [vp.image_std] * 3
        return cls(float(threshold), int(min_kept_frames), tuple(float(s) for s in std),
                   int(vp.temporal_patch_size), int(vp.merge_size))


def token_keep_mask(pixels: torch.Tensor, grid: tuple[int, int, int], s: TokenPruneSettings) -> torch.Tensor:
    """Bool [t * h * w / merge^2] over one video's visual tokens, in the vision tower's output order.

    `pixels`: the processor's flattened patches of this video, [t*h*w, C * temporal_patch * p * p],
    ordered (t, h / merge, w / merge, merge, merge) like the tokens they merge into.
    """
    t, h, w = grid
    m2 = s.merge ** 2
    n_spatial = h * w // m2
    channels = len(s.image_std)
    x = pixels.detach().float().reshape(t, n_spatial, m2, channels, s.temporal_patch, -1)
    x = x.mean(4)  # the temporal patch's frames averaged: [t, n, m2, C, p*p]
    std = torch.tensor(s.image_std, dtype=x.dtype, device=x.device).view(1, 1, channels, 1)
    keep = torch.zeros(t, n_spatial, dtype=torch.bool, device=x.device)
    keep[0] = True
    change = torch.zeros(t, n_spatial, device=x.device)
    last = x[0]
    for i in range(1, t):
        diff = ((x[i] - last).abs() * std).mean((1, 2, 3))  # [n] on a 0-1 pixel scale
        change[i] = diff
        keep[i] = diff >= s.threshold
        last = torch.where(keep[i].view(-1, 1, 1, 1), x[i], last)
    wanted = min(t, math.ceil(s.min_kept_frames / s.temporal_patch)) * n_spatial
    if int(keep.sum()) < wanted:
        change[keep] = -1.0
        extra = torch.argsort(change.flatten(), descending=True)[: wanted - int(keep.sum())]
        keep.view(-1)[extra] = True
    return keep.flatten()


def video_keep_masks(pixel_values_videos: torch.Tensor, video_grid_thw: torch.Tensor, s: TokenPruneSettings
                     ) -> list[torch.Tensor]:
    """One keep mask per video of a batch (the videos' patches are concatenated in `pixel_values_videos`)."""
    grids = [tuple(int(x) for x in g) for g in video_grid_thw.tolist()]
    pieces = torch.split(pixel_values_videos, [t * h * w for t, h, w in grids])
    return [token_keep_mask(p, g, s) for p, g in zip(pieces, grids, strict=True)]


class TokenPruner:
    """Which visual tokens a forward keeps, and how many it kept (counted by `compact_inputs`)."""

    def __init__(self, settings: TokenPruneSettings):
        self.settings = settings
        self.kept_tokens = 0
        self.total_tokens = 0

    @classmethod
    def for_builder(cls, builder) -> TokenPruner | None:
        """The pruner `builder`'s video settings ask for (`token_drop.mode: token`), else None."""
        drop = builder.sampling.drop
        if drop.mode != "token":
            return None
        return cls(TokenPruneSettings.from_processor(builder.processor, drop.threshold, drop.min_kept_frames))

    def filter_features(self, pixel_values_videos: torch.Tensor, video_grid_thw: torch.Tensor, out):
        """The vision seam's output with the dropped tokens' features removed (per video; deepstack too)."""
        masks = video_keep_masks(pixel_values_videos, video_grid_thw, self.settings)
        out.pooler_output = tuple(e[m.to(e.device)] for e, m in zip(out.pooler_output, masks, strict=True))
        deepstack = getattr(out, "deepstack_features", None)
        if deepstack:
            flat = torch.cat(masks)
            out.deepstack_features = [d[flat.to(d.device)] for d in deepstack]
        return out


@dataclass
class CompactInputs:
    """A batch without its dropped visual tokens, and what a forward on it needs.

    inputs: the batch with input_ids / attention_mask / mm_token_type_ids shortened (same padding side).
    position_ids: [3, B, L'] the full sequence's mRoPE positions at the kept tokens.
    rope_deltas: [B, 1] for continuing positions after the prompt (`generate`, the shared-prefix tail).
    index: [B, L'] the full-layout column of each kept column (-1 for padding).
    """

    inputs: dict[str, torch.Tensor]
    position_ids: torch.Tensor
    rope_deltas: torch.Tensor
    index: torch.Tensor


def compact_inputs(model: torch.nn.Module, inputs: dict[str, torch.Tensor], pruner: TokenPruner | None = None
                   ) -> CompactInputs:
    """Drop the video placeholder tokens the pruner drops (none without a pruner); positions from the full batch."""
    core = find_vl_core(model)
    ids, attention = inputs["input_ids"], inputs["attention_mask"]
    positions, deltas = core.get_rope_index(
        ids, mm_token_type_ids=inputs.get("mm_token_type_ids"), attention_mask=attention,
        **{k: inputs[k] for k in ROPE_KEYS if k in inputs})
    keep = attention.bool().clone()
    videos = inputs.get("pixel_values_videos")
    if pruner is not None and videos is not None:
        masks = video_keep_masks(videos, inputs["video_grid_thw"], pruner.settings)
        placeholder = ids == core.config.video_token_id
        flat = torch.cat(masks).to(ids.device)
        if int(placeholder.sum()) != flat.numel():
            raise ValueError(f"token drop: {int(placeholder.sum())} video placeholders for {flat.numel()} visual "
                             "tokens; the prompt and its videos do not match")
        keep[placeholder] = flat
        pruner.kept_tokens += int(flat.sum())
        pruner.total_tokens += flat.numel()
    left = bool((attention[:, 0] == 0).any()) and bool((attention[:, -1] == 1).all())
    counts = keep.sum(1)
    width = int(counts.max())
    index = torch.full((ids.shape[0], width), -1, dtype=torch.long, device=ids.device)
    for r in range(ids.shape[0]):
        cols = keep[r].nonzero().flatten()
        offset = width - cols.numel() if left else 0
        index[r, offset:offset + cols.numel()] = cols
    real = index >= 0
    safe = index.clamp(min=0)
    out = dict(inputs)
    for key in TOKEN_KEYS:
        if key in inputs:
            gathered = inputs[key].gather(1, safe)
            out[key] = torch.where(real, gathered, torch.zeros_like(gathered))
    new_positions = positions.gather(2, safe.unsqueeze(0).expand(positions.shape[0], -1, -1))
    new_positions = torch.where(real.unsqueeze(0), new_positions, torch.ones_like(new_positions))
    top = torch.where(real.unsqueeze(0), new_positions, torch.zeros_like(new_positions)).amax((0, 2))
    new_deltas = (top + 1 - counts).view(-1, 1).to(deltas.dtype)
    return CompactInputs(out, new_positions, new_deltas, index)


def pruned_forward(model: torch.nn.Module, inputs: dict[str, torch.Tensor], pruner: TokenPruner,
                   logits_to_keep: int = 0, **kwargs) -> torch.Tensor:
    """The logits a plain forward on `inputs` returns ([B, keep, V] for the last `logits_to_keep` columns of the
    full layout, all columns for 0), computed on the pruned sequence; dropped columns hold zeros.

    For the plain (whole-sequence) log-prob pass: a completion follows its prompt, so every
    completion column is kept and its logits are those of the compacted sequence.
    """
    c = compact_inputs(model, inputs, pruner)
    length = inputs["input_ids"].shape[1]
    first = length - logits_to_keep if logits_to_keep else 0
    wanted = c.index >= first  # kept columns in the requested range (padding is -1)
    rows, cols = wanted.nonzero(as_tuple=True)
    first_compact = int(cols.min()) if cols.numel() else c.index.shape[1] - 1
    keep = c.index.shape[1] - first_compact
    logits = model(**c.inputs, position_ids=c.position_ids, logits_to_keep=keep, **kwargs).logits
    full = logits.new_zeros((inputs["input_ids"].shape[0], length - first, logits.shape[-1]))
    return full.index_put((rows, c.index[rows, cols] - first), logits[rows, cols - first_compact])
