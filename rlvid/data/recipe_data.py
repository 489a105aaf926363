"""Recipe -> samples and the model-input builder, so every command reads data the same way."""

from __future__ import annotations

import logging
import os

from rlvid.config.schema import Recipe
from rlvid.data.loaders import DataError, load_samples, sample_location
from rlvid.data.model_inputs import VideoInputBuilder, sampling_for_processor
from rlvid.data.prompt_files import resolve_prompt_template
from rlvid.data.sample import Sample
from rlvid.data.sources import parse_sources, set_mix_weight
from rlvid.data.token_drop import TokenDrop
from rlvid.data.video_cache import VideoCache

logger = logging.getLogger("rlvid.data")


def load_split(recipe: Recipe, split: str, base_dir: str | os.PathLike | None = None) -> list[Sample]:
    """Samples of `data.<split>` (one source or a weighted list, rlvid.data.sources), filtered by `data.tasks`
    and truncated to `data.max_samples`.

    Relative data paths and `data.video_root` resolve against `base_dir` (None: the working folder).
    Ids must be unique across a split's sources. A source's `weight` is carried by each of its samples
    (`sources.mix_weight`): the trainer draws samples in proportion to it (data_selection.sampler).
    """
    key = f"data.{split}"
    sources = parse_sources(getattr(recipe.data, split), key, recipe.data.column_map)
    if not sources:
        raise ValueError(f"recipe key '{key}' is empty: name a JSONL file or dataset")
    if split != "train" and any(s.weight != 1.0 for s in sources):
        raise DataError(f"{key}: weights apply to data.train only (an evaluation split is used whole)")
    video_root = recipe.data.video_root
    if video_root is not None and base_dir is not None:
        video_root = os.path.join(base_dir, video_root)
    samples: list[Sample] = []
    first_seen: dict[str, str] = {}
    for source in sources:
        result = load_samples(source.resolved(base_dir), split=source.splits_to_try(split),
                              column_map=source.column_map or None, skip_bad_samples=recipe.data.skip_bad_samples,
                              check_videos=recipe.data.check_videos,
                              check_video_files=recipe.data.check_video_files, video_root=video_root)
        for sample in result.samples:
            where = sample_location(sample)
            if sample.id in first_seen:
                raise DataError(f"{where}: id {sample.id!r} is also at {first_seen[sample.id]}; ids must be unique "
                                f"across the sources of {key}")
            first_seen[sample.id] = where
            if source.weight != 1.0:
                set_mix_weight(sample, source.weight)
            samples.append(sample)
    spec = getattr(recipe.data, split)
    if recipe.data.tasks:
        samples = [s for s in samples if s.task in recipe.data.tasks]
    if recipe.data.max_samples is not None:
        samples = samples[: recipe.data.max_samples]
    if not samples:
        raise ValueError(f"{key} ({spec}) has no samples after filtering by data.tasks={recipe.data.tasks}")
    if len(sources) > 1:
        counts = ", ".join(f"{s.path} x{s.weight:g}" for s in sources)
        logger.info("%s: %d samples from %d sources (%s)", key, len(samples), len(sources), counts)
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

