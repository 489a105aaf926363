"""Load samples from JSONL files or Hugging Face `datasets`, validating every record up front.

A bad annotation fails at load time with its file and line (or dataset row), never as a wrong
label or a crashed decode mid-training. With `skip_bad_samples=True` bad records are dropped,
counted and reported in one warning instead, for large real corpora with a few broken entries.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlvid.data.atomic import atomic_path
from rlvid.data.sample import Sample, SampleError

logger = logging.getLogger("rlvid.data")

# How many skip reasons the warning quotes; all of them stay in LoadResult.skipped.
_REASONS_IN_WARNING = 3


class DataError(ValueError):
    """An annotation record that cannot be used; the message starts with its location ("file.jsonl:12: ...")."""


@dataclass
class LoadResult:
    """The samples that loaded, and one message per skipped record (each naming its location)."""

    samples: list[Sample]
    skipped: list[str] = field(default_factory=list)
    source: str = ""

    @property
    def num_skipped(self) -> int:
        return len(self.skipped)

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)


def load_jsonl(path: str | os.PathLike, *, skip_bad_samples: bool = False, check_videos: bool = False,
               check_video_files: bool = False) -> LoadResult:
    """Read one Sample per line; relative `video` paths are taken relative to the JSONL's folder.

    Blank lines are ignored. A line that is not JSON, is not a valid Sample, repeats an earlier id,
    or (with `check_videos`) points at an unusable video raises DataError("{path}:{line}: ..."),
    or is skipped and counted when `skip_bad_samples` is set.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: annotation file not found")
    collector = _Collector(str(path), path.parent.absolute(), skip_bad_samples, check_videos, check_video_files)
    with path.open("rb") as f:
        for lineno, raw_line in enumerate(f, start=1):
            where = f"{path}:{lineno}"
            try:
                text = raw_line.decode("utf-8")
            except UnicodeDecodeError as err:
                collector.reject(where, f"not UTF-8 text ({err.reason} at byte {err.start})")
                continue
            if not text.strip():
                continue
            try:
                raw = json.loads(text)
            except json.JSONDecodeError as err:
                collector.reject(where, f"invalid JSON: {err.msg} at column {err.colno}")
                continue
            collector.add(where, raw)
    return collector.finish()


def load_hf_dataset(
    name_or_path: str | os.PathLike,
    split: str = "train",
    *,
    column_map: Mapping[str, str] | None = None,
    skip_bad_samples: bool = False,
    check_videos: bool = False,
    check_video_files: bool = False,
    **load_kwargs: Any,
) -> LoadResult:
    """Map a `datasets` split to Samples, with the same error policy as `load_jsonl`.

    `name_or_path` is a `save_to_disk` folder, a local data file (.parquet/.json/.jsonl/.csv), a
    folder of such files, or anything else `datasets.load_dataset` accepts (`load_kwargs` pass
    through; rlvid itself never asks for a download). `column_map` renames dataset columns to
    Sample fields ({"query": "question"}); other columns that are not Sample fields go under
    `meta`. Relative video paths of a local dataset are taken relative to its folder. Errors name
    "{name}[{split}] row {i}" (0-based rows).
    """
    dataset = _open_dataset(name_or_path, split, load_kwargs)
    if column_map:
        try:
            dataset = dataset.rename_columns(dict(column_map))
        except ValueError as err:
            raise DataError(f"{name_or_path}[{split}]: column_map {dict(column_map)} does not fit: {err}") from err
    dataset = _undecoded_videos(dataset)
    local = Path(name_or_path)
    base = (local if local.is_dir() else local.parent).absolute() if local.exists() else None
    collector = _Collector(f"{name_or_path}[{split}]", base, skip_bad_samples, check_videos, check_video_files)
    fields = set(Sample.__dataclass_fields__)
    for i, row in enumerate(dataset):
        record = {k: v for k, v in row.items() if k in fields}
        extra = {k: v for k, v in row.items() if k not in fields}
        if extra and isinstance(record.get("meta") or {}, dict):
            record["meta"] = {**(record.get("meta") or {}), **extra}
        if isinstance(record.get("video"), dict):  # an undecoded datasets.Video cell
            record["video"] = record["video"].get("path")
        collector.add(f"{name_or_path}[{split}] row {i}", record)
    return collector.finish()


def load_samples(
    spec: str | os.PathLike,
    *,
    split: str = "train",
    column_map: Mapping[str, str] | None = None,
    skip_bad_samples: bool = False,
    check_videos: bool = False,
    check_video_files: bool = False,
) -> LoadResult:
    """Load a `.jsonl` file with `load_jsonl`, anything else with `load_hf_dataset` (`split`, `column_map`)."""
    if os.fspath(spec).endswith(".jsonl"):
        if column_map:
            raise DataError(f"{spec}: column_map applies to datasets only; a JSONL file must use Sample field names")
        return load_jsonl(spec, skip_bad_samples=skip_bad_samples, check_videos=check_videos,
                          check_video_files=check_video_files)
    return load_hf_dataset(
        spec, split, column_map=column_map, skip_bad_samples=skip_bad_samples, check_videos=check_videos,
        check_video_files=check_video_files,
    )


def write_jsonl(samples: Iterable[Sample], path: str | os.PathLike) -> Path:
    """Write one Sample per line (the inverse of `load_jsonl`); creates the parent folder. Atomic: a kill
    mid-write leaves the previous file (or none), never a cut-short one."""
    path = Path(path)
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as f:
        for sample in samples:
            f.write(json.dumps(sample.to_dict(), ensure_ascii=False) + "\n")
    return path


def sample_location(sample: Sample) -> str:
    """Where a loaded sample came from ("train.jsonl:12"), or "<unknown>" for a sample built in code."""
    return getattr(sample, "_loaded_from", "<unknown>")


class _Collector:
    """Validates records one by one and applies the error policy shared by both loaders."""

    def __init__(self, source: str, base: Path | None, skip_bad: bool, check_videos: bool,
                 check_video_files: bool = False) -> None:
        self.source = source
        self.base = base
        self.skip_bad = skip_bad
        self.check_videos = check_videos
        self.check_video_files = check_video_files
        self.result = LoadResult(samples=[], source=source)
        self._first_seen: dict[str, str] = {}
        self._video_errors: dict[str, str | None] = {}
        self._video_seconds: dict[str, float] = {}

    def reject(self, where: str, reason: str) -> None:
        message = f"{where}: {reason}"
        if not self.skip_bad:
            raise DataError(message)
        self.result.skipped.append(message)

    def add(self, where: str, raw: Any) -> None:
        try:
            sample = Sample.from_dict(raw, where=where)
        except SampleError as err:
            if not self.skip_bad:
                raise DataError(str(err)) from err
            self.result.skipped.append(str(err))
            return
        if sample.id in self._first_seen:
            self.reject(where, f"duplicate id {sample.id!r} (first at {self._first_seen[sample.id]})")
            return
        sample.video = _resolve(sample.video, self.base)
        if self.check_video_files and os.path.isabs(sample.video) and not os.path.exists(sample.video):
            self.reject(where, f"video file not found: {sample.video}")
            return
        if self.check_videos:
            problem = self._video_problem(sample.video) or self._duration_problem(sample)
            if problem:
                self.reject(where, f"video {problem}")
                return
        sample._loaded_from = where  # named when the sample fails mid-run (rlvid.trainers.bad_samples)
        self._first_seen[sample.id] = where
        self.result.samples.append(sample)

    def finish(self) -> LoadResult:
        skipped = self.result.skipped
        if skipped:
            logger.warning(
                "%s: skipped %d bad sample(s), kept %d; first: %s",
                self.source,
                len(skipped),
                len(self.result.samples),
                " | ".join(skipped[:_REASONS_IN_WARNING]),
            )
        return self.result

    def _duration_problem(self, sample: Sample) -> str | None:
        """The declared duration against the probed one (10% + 1 s of slack), or None."""
        seconds = self._video_seconds.get(sample.video)
        if seconds is not None and abs(sample.duration - seconds) > 0.1 * seconds + 1.0:
            return f"{sample.video}: declared duration {sample.duration:g} s, but the file lasts {seconds:.1f} s"
        return None

    def _video_problem(self, video: str) -> str | None:
        """The probe error for `video` (already naming its path), or None; probed once per path."""
        if video not in self._video_errors:
            # Imported here: video.py pulls in torch and transformers, which plain loading does not need.
            from rlvid.data.video import VideoError, probe_video

            try:
                self._video_seconds[video] = probe_video(video).duration
                self._video_errors[video] = None
            except VideoError as err:
                self._video_errors[video] = str(err)
        return self._video_errors[video]


def _resolve(video: str, base: Path | None) -> str:
    """An absolute path for a relative local video; absolute paths and URLs stay as they are."""
    if base is None or "://" in video or os.path.isabs(video):
        return video
    return os.path.normpath(base / video)


def _open_dataset(name_or_path: str | os.PathLike, split: str, load_kwargs: dict[str, Any]) -> Any:
    import datasets

    path = Path(name_or_path)
    where = f"{name_or_path}[{split}]"
    builders = {".parquet": "parquet", ".json": "json", ".jsonl": "json", ".csv": "csv"}
    try:
        if path.is_dir() and ((path / "dataset_dict.json").exists() or (path / "state.json").exists()):
            loaded = datasets.load_from_disk(str(path))
            if isinstance(loaded, datasets.DatasetDict):
                if split not in loaded:
                    raise DataError(f"{where}: no split {split!r}; available: {sorted(loaded)}")
                loaded = loaded[split]
            return loaded
        if path.is_file():
            if path.suffix not in builders:
                raise DataError(f"{where}: unsupported data file type {path.suffix!r}; use one of {sorted(builders)}")
            files = {split: str(path)}
            return datasets.load_dataset(builders[path.suffix], data_files=files, split=split, **load_kwargs)
        return datasets.load_dataset(os.fspath(name_or_path), split=split, **load_kwargs)
    except DataError:
        raise
    except (FileNotFoundError, ValueError, KeyError) as err:
        raise DataError(f"{where}: cannot load dataset: {err}") from err


def _undecoded_videos(dataset: Any) -> Any:
    """Keep a `datasets.Video` column as paths: rlvid decodes videos itself (rlvid.data.video)."""
    import datasets

    feature = dataset.features.get("video") if dataset.features else None
    if isinstance(feature, datasets.Video) and feature.decode:
        return dataset.cast_column("video", datasets.Video(decode=False))
    return dataset
