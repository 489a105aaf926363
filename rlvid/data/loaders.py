"""Load samples from JSONL files or Hugging Face `datasets`, validating every record up front.

A bad annotation fails at load time with its file and line (or dataset row), never as a wrong
label or a crashed decode mid-training. With `skip_bad_samples=True` bad records are dropped,
counted and reported in one warning instead, for large real corpora with a few broken entries.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
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
               check_video_files: bool = False, video_root: str | os.PathLike | None = None) -> LoadResult:
    """Read one Sample per line; relative `video` paths are taken relative to `video_root`, by default the
    JSONL's folder.

    Blank lines are ignored. A line that is not JSON, is not a valid Sample, repeats an earlier id,
    or (with `check_videos`) points at an unusable video raises DataError("{path}:{line}: ..."),
    or is skipped and counted when `skip_bad_samples` is set.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: annotation file not found")
    base, rule = _video_base(video_root, path.parent.absolute(), "the JSONL file's folder")
    collector = _Collector(str(path), base, skip_bad_samples, check_videos, check_video_files, rule)
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
    split: str | Sequence[str] = "train",
    *,
    column_map: Mapping[str, str] | None = None,
    skip_bad_samples: bool = False,
    check_videos: bool = False,
    check_video_files: bool = False,
    video_root: str | os.PathLike | None = None,
    **load_kwargs: Any,
) -> LoadResult:
    """Map a `datasets` split to Samples, with the same error policy as `load_jsonl`.

    `name_or_path` is a `save_to_disk` folder, a local data file (.parquet/.json/.jsonl/.csv), a
    folder of such files, or anything else `datasets.load_dataset` accepts (`load_kwargs` pass
    through; rlvid itself never asks for a download). `column_map` renames dataset columns to
    Sample fields ({"query": "question"}); other columns that are not Sample fields go under
    `meta`. Relative video paths are taken relative to `video_root`, by default a local dataset's folder
    (a Hub dataset's stay relative to the working folder). `split` may list names to try in order (the
    first one the dataset has is used). Errors name "{name}[{split}] row {i}" (0-based rows).
    """
    dataset, split = _open_dataset(name_or_path, [split] if isinstance(split, str) else list(split), load_kwargs)
    if column_map:
        try:
            dataset = dataset.rename_columns(dict(column_map))
        except ValueError as err:
            raise DataError(f"{name_or_path}[{split}]: column_map {dict(column_map)} does not fit: {err}") from err
    dataset = _undecoded_videos(dataset)
    local = Path(name_or_path)
    folder = (local if local.is_dir() else local.parent).absolute() if local.exists() else None
    base, rule = _video_base(video_root, folder, "the dataset's folder" if folder else "the working folder")
    collector = _Collector(f"{name_or_path}[{split}]", base, skip_bad_samples, check_videos, check_video_files, rule)
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
    split: str | Sequence[str] = "train",
    column_map: Mapping[str, str] | None = None,
    skip_bad_samples: bool = False,
    check_videos: bool = False,
    check_video_files: bool = False,
    video_root: str | os.PathLike | None = None,
) -> LoadResult:
    """Load a `.jsonl` file with `load_jsonl`, anything else with `load_hf_dataset` (`split`, `column_map`)."""
    if os.fspath(spec).endswith(".jsonl"):
        if column_map:
            raise DataError(f"{spec}: column_map applies to datasets only; a JSONL file must use Sample field names")
        return load_jsonl(spec, skip_bad_samples=skip_bad_samples, check_videos=check_videos,
                          check_video_files=check_video_files, video_root=video_root)
    return load_hf_dataset(
        spec, split, column_map=column_map, skip_bad_samples=skip_bad_samples, check_videos=check_videos,
        check_video_files=check_video_files, video_root=video_root,
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
                 check_video_files: bool = False, rule: str = "") -> None:
        self.source = source
        self.base = base
        self.rule = rule  # how relative video paths were resolved, for the not-found message
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
        given = sample.video
        sample.video = _resolve(sample.video, self.base)
        if self.check_video_files and "://" not in sample.video and not os.path.exists(sample.video):
            how = "" if os.path.isabs(given) else f" ({given!r} taken relative to {self.rule}; set data.video_root " \
                "to the folder your video paths are relative to, docs/data.md)"
            self.reject(where, f"video file not found: {sample.video}{how}")
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


def _video_base(video_root: str | os.PathLike | None, default: Path | None, default_rule: str
                ) -> tuple[Path | None, str]:
    """The folder relative video paths resolve against, and how to say so in an error."""
    if video_root is None:
        return default, default_rule
    return Path(video_root).absolute(), f"data.video_root ({Path(video_root).absolute()})"


def _open_dataset(name_or_path: str | os.PathLike, splits: list[str], load_kwargs: dict[str, Any]) -> tuple[Any, str]:
    """The first of `splits` the dataset has, and its name; DataError listing the available splits otherwise."""
    import datasets

    path = Path(name_or_path)
    wanted = " or ".join(repr(s) for s in splits)
    where = f"{name_or_path}[{splits[0]}]"
    builders = {".parquet": "parquet", ".json": "json", ".jsonl": "json", ".csv": "csv"}
    try:
        if path.is_dir() and ((path / "dataset_dict.json").exists() or (path / "state.json").exists()):
            loaded = datasets.load_from_disk(str(path))
            if not isinstance(loaded, datasets.DatasetDict):
                return loaded, splits[0]
            for split in splits:
                if split in loaded:
                    return loaded[split], split
            raise DataError(f"{where}: no split {wanted}; available: {sorted(loaded)} (name one as PATH@SPLIT)")
        if path.is_file():
            if path.suffix not in builders:
                raise DataError(f"{where}: unsupported data file type {path.suffix!r}; use one of {sorted(builders)}")
            files = {splits[0]: str(path)}
            return datasets.load_dataset(builders[path.suffix], data_files=files, split=splits[0],
                                         **load_kwargs), splits[0]
        last: Exception | None = None
        for split in splits:
            try:
                return datasets.load_dataset(os.fspath(name_or_path), split=split, **load_kwargs), split
            except ValueError as err:  # an unknown split; the next name may exist
                last = err
        raise DataError(f"{where}: no split {wanted}: {last} (name one as PATH@SPLIT)")
    except DataError:
        raise
    except Exception as err:  # datasets raises many types (not found, offline, bad files): one clear line
        hint = "" if path.exists() else " (not a local path; as a Hub name it must be in the datasets cache " \
            "when offline)"
        raise DataError(f"{where}: cannot load dataset: {type(err).__name__}: {err}{hint}") from err


def _undecoded_videos(dataset: Any) -> Any:
    """Keep a `datasets.Video` column as paths: rlvid decodes videos itself (rlvid.data.video)."""
    import datasets

    feature = dataset.features.get("video") if dataset.features else None
    if isinstance(feature, datasets.Video) and feature.decode:
        return dataset.cast_column("video", datasets.Video(decode=False))
    return dataset
