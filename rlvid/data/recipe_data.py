"""Recipe -> samples and the model-input builder, so every command reads data the same way."""

from __future__ import annotations

import logging
import os

from rlvid.config.schema import Recipe
from rlvid.data.loaders import load_samples
from rlvid.data.model_inputs import VideoInputBuilder, sampling_for_processor
from rlvid.data.prompt_files import resolve_prompt_template
from rlvid.data.sample import Sample
from rlvid.data.token_drop import TokenDrop
from rlvid.data.video_cache import VideoCache

logger = logging.getLogger("rlvid.data")


def load_split(recipe: Recipe, split: str) -> list[Sample]:
    """Samples of `data.<split>`, filtered by `data.tasks` and truncated to `data.max_samples`."""
    spec = getattr(recipe.data, split)
    if not spec:
        raise ValueError(f"recipe key 'data.{split}' is empty: name a JSONL file or dataset")
    result = load_samples(spec, split=split, skip_bad_samples=recipe.data.skip_bad_samples,
                          check_videos=recipe.data.check_videos, check_video_files=recipe.data.check_video_files)
    samples = list(result.samples)
    if recipe.data.tasks:
        samples = [s for s in samples if s.task in recipe.data.tasks]
    if recipe.data.max_samples is not None:
        samples = samples[: recipe.data.max_samples]
    if not samples:
        raise ValueError(f"data.{split} ({spec}) has no samples after filtering by data.tasks={recipe.data.tasks}")
    return samples


def make_input_builder(recipe: Recipe, processor, cache: VideoCache | None = None,
                       base_dir: str | os.PathLike | None = None) -> VideoInputBuilder:
    """The builder with the recipe's video sampling and prompts (template, reasoning, system prompt); a template
    file is read and checked here, relative to `base_dir` (the recipe's folder) first."""
    template = resolve_prompt_template(recipe.data.prompt_template, base_dir)
    v = recipe.data.video
    overrides = dict(fps=v.fps, min_frames=v.min_frames, max_frames=v.max_frames, total_pixels=v.total_pixels)
    if v.min_pixels_per_frame is not None:
        overrides["min_pixels"] = v.min_pixels_per_frame
    if v.max_pixels_per_frame is not None:
        overrides["max_pixels"] = v.max_pixels_per_frame
    drop = v.token_drop
    overrides["drop"] = TokenDrop(drop.mode, drop.threshold, drop.min_kept_frames)
    sampling = sampling_for_processor(processor, **overrides)
    return VideoInputBuilder(processor, sampling, cache or VideoCache(v.cache_max_bytes),
                             template=template, reasoning=recipe.data.reasoning, system=recipe.data.system_prompt,
                             streaming=v.streaming,
                             stream_chunk_seconds=v.stream_chunk_seconds)

