"""Shared pieces of the importers: reading files with located errors, intervals, the skip policy."""

from __future__ import annotations

import csv
import json
import logging
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rlvid.data.loaders import DataError
from rlvid.data.sample import Sample, SampleError

logger = logging.getLogger("rlvid.data")


class SkipPolicy:
    """Raise on the first bad record, or (skip_bad=True) collect its message, go on, and warn once at the end."""

    def __init__(self, source: str | os.PathLike, skip_bad: bool) -> None:
        self.source = str(source)
        self.skip_bad = skip_bad
        self.skipped: list[str] = []

    @contextmanager
    def record(self) -> Iterator[None]:
        try:
            yield
        except DataError as err:
            if not self.skip_bad:
                raise
            self.skipped.append(str(err))

    def finish(self, kept: int) -> None:
        if self.skipped:
            logger.warning(
                "%s: skipped %d bad record(s), kept %d; first: %s",
                self.source, len(self.skipped), kept, " | ".join(self.skipped[:3]),
            )


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    try:
        with path.open(encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except json.JSONDecodeError as err:
        raise DataError(f"{path}:{err.lineno}: invalid JSON: {err.msg} at column {err.colno}") from err


def read_csv(path: str | os.PathLike, required: tuple[str, ...]) -> Iterator[tuple[str, dict[str, str]]]:
    """Yield ("{path}:{line}", row) for each CSV row, after checking the header has the `required` columns."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{path}:1: missing column(s) {missing}; header is {reader.fieldnames}")
        for row in reader:
            yield f"{path}:{reader.line_num}", row


def number(value: Any, what: str, where: str) -> float:
    """A finite float from a JSON/CSV value, or DataError naming `what` and `where`."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{where}: {what} must be a number, got {value!r}") from None
    if not math.isfinite(out):
        raise DataError(f"{where}: {what} must be finite, got {value!r}")
    return out


def clamp_interval(start: float, end: float, duration: float, where: str) -> tuple[float, float]:
    """Clip [start, end] into [0, duration]: public annotations often overshoot the end by a little.

    A reversed interval, or one that starts after the video ends, is an error rather than a guess.
    """
    if start > end:
        raise DataError(f"{where}: interval [{start}, {end}] is reversed")
    if start >= duration:
        raise DataError(f"{where}: interval [{start}, {end}] starts after the video ends (duration {duration})")
    return max(0.0, start), min(duration, end)


def video_file(video_dir: str | os.PathLike, name: str, ext: str) -> str:
    return os.path.join(os.fspath(video_dir), f"{name}{ext}")


def build_sample(where: str, **fields: Any) -> Sample:
    """Validate through the Sample schema so an importer can never write a sample the loader would reject."""
    try:
        return Sample.from_dict(fields, where=where)
    except SampleError as err:
        raise DataError(str(err)) from err


def as_question(text: str) -> str:
    """Trim a natural-language query and end it with a question mark (NExT-QA questions have none)."""
    text = text.strip()
    return text if text.endswith("?") else f"{text}?"


def grounding_question(query: str) -> str:
    """The temporal-grounding question for a sentence query, phrased like the synthetic ones."""
    return f'When does "{query.strip().rstrip(".")}" happen in the video?'
