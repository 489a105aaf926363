"""Vision-encoder reuse: a video's visual features are computed once per step and reused.

In one GRPO step a prompt's video goes through the vision tower in the G rollouts' prefill, the
old and reference log-prob passes and the update forward. The features only change when the
vision weights do, so within a step (before the optimizer step) one computation per video and
model is enough. `VisionFeatureCache` wraps the model's `get_video_features` (the seam every
Qwen2.5-VL / Qwen3-VL forward goes through, `generate` included) and, while a step is open
(`with cache.step():`), serves each video's features from the first computation:

- videos are matched by their pixel tensor (same grid and `torch.equal` pixels), so any caller
  that hands the model the same frames gets the same features, whatever the batch layout;
- repeats inside one call (`generate(num_return_sequences=G)` repeats the pixels G times) are
  computed once;
- with gradients enabled and any vision parameter trainable (vision tower or projector), the
  call is NOT cached: the update recomputes the features with gradients, exactly as without the
  cache. With the vision tower and projector frozen, the update reuses the cached features;
- Qwen3-VL's deepstack features are cached per video alongside the merged ones;
- LoRA adapters inside the vision tower: the adapters' on/off state is part of the key, so the
  reference pass (adapters disabled) never receives the policy's features.

Every call is timed as the `vision` sub-phase (rlvid.timing), cached or not, so the
per-phase breakdown shows the vision encoder whether reuse is on or off.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from rlvid.timing import subphase


@dataclass
class _Entry:
    grid: tuple[int, int, int]
    variant: tuple[bool, ...]
    pixels: torch.Tensor
    key: tuple
    embeds: torch.Tensor | None
    deepstack: list[torch.Tensor] | None


@dataclass
class ReuseStats:
    computed: int = 0  # videos run through the vision tower
    reused: int = 0  # videos served from the cache (or deduplicated within a call)
    bypassed: int = 0  # videos computed outside the cache (gradients needed, or no step open)


def find_vl_core(model: torch.nn.Module) -> torch.nn.Module:
    """The inner Qwen*-VL model (has `visual`, `language_model`, `get_video_features`, `get_rope_index`),
    found through DDP / peft / ForConditionalGeneration wrappers."""
    for module in model.modules():
        if all(hasattr(module, a) for a in ("visual", "language_model", "get_video_features", "get_rope_index")):
            return module
    raise TypeError(f"{type(model).__name__}: no vision-language core (Qwen2.5-VL / Qwen3-VL style) inside")


class VisionFeatureCache:
    """Per-model cache of video features for one step; install once, open with `step()`."""

    def __init__(self, model: torch.nn.Module, enabled: bool = True):
        self.core = find_vl_core(model)
        self.enabled = enabled
        self.stats = ReuseStats()
        self.pruner = None  # a TokenPruner (rlvid.models.token_prune): drops visual tokens from every output
        self._open = False
        self._entries: list[_Entry] = []
        self._output_cls = None
        self._vision_params = list(self.core.visual.parameters())
        self._lora = [m for m in self.core.visual.modules() if hasattr(m, "lora_A") and hasattr(m, "disable_adapters")]
        self._merge = int(self.core.visual.spatial_merge_size)
        if isinstance(self.core.__dict__.get("get_video_features"), _Wrapped):
            raise RuntimeError("a VisionFeatureCache is already installed on this model")
        self._original = self.core.get_video_features
        self.core.get_video_features = _Wrapped(self)

    @classmethod
    def attach(cls, model: torch.nn.Module, enabled: bool | None = True) -> VisionFeatureCache:
        """The cache installed on `model`, installing one if there is none (enabled=None: keep its state;
        a new one starts disabled, a pass-through seam)."""
        cache = cls.installed(model)
        if cache is None:
            return cls(model, bool(enabled))
        if enabled is not None:
            cache.enabled = enabled
        return cache

    @staticmethod
    def installed(model: torch.nn.Module) -> VisionFeatureCache | None:
        """The cache installed on `model`, or None."""
        try:
            core = find_vl_core(model)
        except TypeError:
            return None
        wrapped = core.__dict__.get("get_video_features")
        return wrapped.cache if isinstance(wrapped, _Wrapped) else None

    def detach(self) -> None:
        """Restore the model's own `get_video_features`."""
        self.core.__dict__.pop("get_video_features", None)
        self.clear()

    @contextmanager
    def step(self) -> Iterator[VisionFeatureCache]:
        """Reuse features inside the block (one training step); forget them when it ends."""
        self._open = True
        try:
            yield self
        finally:
            self._open = False
            self.clear()

    def clear(self) -> None:
        self._entries.clear()

    # ------------------------------------------------------------------ the wrapped call

    def _call(self, pixel_values_videos: torch.Tensor, video_grid_thw: torch.Tensor | None = None, **kwargs):
        with subphase("vision"):
            return_dict = kwargs.pop("return_dict", True)
            kwargs.pop("use_cache", None)  # Qwen3-VL forwards it; the vision tower ignores it
            if not self._use_cache(video_grid_thw, kwargs):
                self.stats.bypassed += 0 if video_grid_thw is None else len(video_grid_thw)
                out = self._original(pixel_values_videos, video_grid_thw, return_dict=True, **kwargs)
            else:
                out = self._cached(pixel_values_videos, video_grid_thw)
            if self.pruner is not None and video_grid_thw is not None:
                out = self.pruner.filter_features(pixel_values_videos, video_grid_thw, out)
            return out if return_dict else out.to_tuple()

    def _use_cache(self, grid: torch.Tensor | None, kwargs: dict) -> bool:
        if not (self.enabled and self._open) or grid is None or kwargs:
            return False
        return not (torch.is_grad_enabled() and any(p.requires_grad for p in self._vision_params))

    def _variant(self) -> tuple[bool, ...]:
        return tuple(bool(m.disable_adapters) for m in self._lora)

    def _cached(self, pixels: torch.Tensor, grid: torch.Tensor):
        grids = [tuple(int(x) for x in g) for g in grid.tolist()]
        slices = torch.split(pixels, [t * h * w for t, h, w in grids])
        variant = self._variant()
        found: list[_Entry | None] = []
        pending: list[_Entry] = []  # new videos of this call, computed together below
        for g, piece in zip(grids, slices, strict=True):
            key = _fingerprint(piece)
            entry = self._lookup(self._entries, g, variant, key, piece) or self._lookup(pending, g, variant, key, piece)
            if entry is None:
                entry = _Entry(g, variant, piece, key, None, None)
                pending.append(entry)
            found.append(entry)
        if pending:
            self._compute(pending, grid)
            self._entries += pending
        self.stats.computed += len(pending)
        self.stats.reused += len(grids) - len(pending)
        fields = {"pooler_output": tuple(e.embeds for e in found)}
        if found[0].deepstack is not None:
            fields["deepstack_features"] = [torch.cat([e.deepstack[k] for e in found])
                                            for k in range(len(found[0].deepstack))]
        return self._output_cls(**fields)

    @staticmethod
    def _lookup(entries: list[_Entry], grid: tuple, variant: tuple, key: tuple, pixels: torch.Tensor
                ) -> _Entry | None:
        for e in entries:
            if (e.grid == grid and e.variant == variant and e.key == key and e.pixels.device == pixels.device
                    and torch.equal(e.pixels, pixels)):
                return e
        return None

    def _compute(self, pending: list[_Entry], like: torch.Tensor) -> None:
        grid = torch.tensor([e.grid for e in pending], dtype=like.dtype, device=like.device)
        out = self._original(torch.cat([e.pixels for e in pending]), grid, return_dict=True)
        self._output_cls = type(out)
        tokens = [t * h * w // self._merge ** 2 for t, h, w in (e.grid for e in pending)]
        deepstack = getattr(out, "deepstack_features", None)
        per_layer = [torch.split(d, tokens) for d in deepstack] if deepstack else None
        for i, (entry, embeds) in enumerate(zip(pending, out.pooler_output, strict=True)):
            entry.embeds = embeds
            entry.deepstack = [layer[i] for layer in per_layer] if per_layer is not None else None


def _fingerprint(pixels: torch.Tensor) -> tuple:
    """Shape plus the sum of ~1k evenly strided values: a cheap filter before the exact `torch.equal`."""
    flat = pixels.reshape(-1)
    step = max(1, flat.numel() // 1024)
    return (tuple(pixels.shape), float(flat[::step].double().sum()))


class _Wrapped:
    """Stands in for the core's bound `get_video_features` (an instance attribute shadows the method)."""

    def __init__(self, cache: VisionFeatureCache):
        self.cache = cache

    def __call__(self, *args, **kwargs):
        return self.cache._call(*args, **kwargs)


def visual_tokens(grid_thw: torch.Tensor | None, merge_size: int = 2) -> int:
    """Visual tokens the LLM sees for these grids (t * h * w / merge^2 each)."""
    return 0 if grid_thw is None else int((grid_thw.prod(-1) // merge_size**2).sum())
