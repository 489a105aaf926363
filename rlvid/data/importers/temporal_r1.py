"""Temporal-R1 / EasyR1-style grounding JSON -> temporal_grounding samples.

A JSON list of records with `problem`, `solution` and `video_length` (seconds) and a video path
under `video`, `path` or `video_path`. The solution gives the moment as fractions of the video
length: a pair [0.12, 0.35], a list of pairs, or text such as "<answer>0.12 to 0.35</answer>".
Intervals are converted to seconds; the original problem and solution are kept in meta.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from rlvid.data.importers._common import (
    SkipPolicy,
    build_sample,
    clamp_interval,
    grounding_question,
    number,
    read_json,
)
from rlvid.data.loaders import DataError
from rlvid.data.sample import Sample

VIDEO_KEYS = ("video", "path", "video_path")
DURATION_KEYS = ("video_length", "duration")
QUERY_KEYS = ("query", "sentence")
_NUMBER = re.compile(r"[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?")


def import_temporal_r1(
    annotations: str | os.PathLike,
    video_dir: str | os.PathLike | None = None,
    *,
    solution_unit: str = "fraction",
    skip_bad: bool = False,
) -> list[Sample]:
    """One sample per record, id = the record's `id` or `{file stem}-{index}`.

    `video_dir` (Temporal-R1's `data_folder`) prefixes relative video paths; `solution_unit` is
    "fraction" (of the video length, Temporal-R1's convention) or "seconds". The question is built
    from a `query`/`sentence` key when present, otherwise it is the problem text.
    """
    if solution_unit not in ("fraction", "seconds"):
        raise ValueError(f"solution_unit must be 'fraction' or 'seconds', got {solution_unit!r}")
    records = read_json(annotations)
    if not isinstance(records, list):
        raise DataError(f"{annotations}: expected a JSON list of records, got {type(records).__name__}")
    policy = SkipPolicy(annotations, skip_bad)
    samples: list[Sample] = []
    for i, record in enumerate(records):
        where = f"{annotations}[{i}]"
        with policy.record():
            if not isinstance(record, dict):
                raise DataError(f"{where}: expected an object, got {type(record).__name__}")
            problem = record.get("problem")
            if not isinstance(problem, str) or not problem.strip():
                raise DataError(f"{where}: missing 'problem' text")
            duration = number(_first(record, DURATION_KEYS, where), "video_length", where)
            scale = duration if solution_unit == "fraction" else 1.0
            intervals = []
            for start, end in _solution_pairs(record.get("solution"), where):
                if solution_unit == "fraction" and not all(-1e-6 <= v <= 1 + 1e-6 for v in (start, end)):
                    raise DataError(f"{where}: solution [{start}, {end}] is not a fraction of the video length (0..1)")
                intervals.append(list(clamp_interval(start * scale, end * scale, duration, where)))
            query = next((record[k] for k in QUERY_KEYS if isinstance(record.get(k), str)), None)
            samples.append(build_sample(
                where,
                id=str(record.get("id", f"{Path(annotations).stem}-{i}")),
                video=_video_path(str(_first(record, VIDEO_KEYS, where)), video_dir),
                duration=duration,
                task="temporal_grounding",
                question=grounding_question(query) if query else problem.strip(),
                intervals=intervals,
                meta={"source": "temporal_r1", "problem": problem, "solution": record.get("solution"),
                      **({"dataset": record["dataset"]} if "dataset" in record else {})},
            ))
    policy.finish(len(samples))
    if solution_unit == "seconds":
        _refuse_fractions(samples, annotations)
    return samples


def _refuse_fractions(samples: list[Sample], annotations: str | os.PathLike) -> None:
    """Seconds that are all <= 1 over a whole file are fractions of the video length, almost surely:
    importing them as seconds would put every moment in the first second of its video."""
    values = [v for s in samples for iv in (s.intervals or []) for v in iv]
    if values and max(values) <= 1.0:
        raise DataError(
            f"{annotations}: solution_unit 'seconds', but every solution value in the file is <= 1 "
            "(fractions of the video length?); import with solution_unit 'fraction' (--solution-unit fraction)"
        )


def _first(record: dict, keys: tuple[str, ...], where: str) -> Any:
    for key in keys:
        if record.get(key) is not None:
            return record[key]
    raise DataError(f"{where}: missing one of {list(keys)}")


def _solution_pairs(solution: Any, where: str) -> list[tuple[float, float]]:
    """[(start, end), ...] from a pair, a list of pairs, or text holding an even count of numbers."""
    if isinstance(solution, str):
        values: list[Any] = _NUMBER.findall(solution)
    elif isinstance(solution, list) and all(isinstance(p, list) for p in solution):
        if any(len(p) != 2 for p in solution):
            raise DataError(f"{where}: every pair in solution must be [start, end], got {solution!r}")
        values = [v for pair in solution for v in pair]
    elif isinstance(solution, list):
        values = list(solution)
    else:
        values = []
    if not values or len(values) % 2:
        raise DataError(f"{where}: cannot read [start, end] pairs from solution {solution!r}")
    numbers = [number(v, "solution", where) for v in values]
    return list(zip(numbers[::2], numbers[1::2], strict=True))


def _video_path(video: str, video_dir: str | os.PathLike | None) -> str:
    if video_dir is None or os.path.isabs(video):
        return video
    return os.path.join(os.fspath(video_dir), video)
