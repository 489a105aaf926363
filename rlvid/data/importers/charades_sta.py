"""Charades-STA: `VIDEOID start end##sentence` lines -> temporal_grounding samples.

Durations are not in the annotation file; they come from Charades' own CSV (Charades_v1_train.csv
or _test.csv: columns `id` and `length`) or from a JSON object {video_id: seconds}.
"""

from __future__ import annotations

import os
from pathlib import Path

from rlvid.data.importers._common import (
    SkipPolicy,
    build_sample,
    clamp_interval,
    grounding_question,
    number,
    read_csv,
    read_json,
    video_file,
)
from rlvid.data.loaders import DataError
from rlvid.data.sample import Sample


def import_charades_sta(
    annotations: str | os.PathLike,
    durations: str | os.PathLike,
    video_dir: str | os.PathLike,
    *,
    video_ext: str = ".mp4",
    skip_bad: bool = False,
) -> list[Sample]:
    """One sample per annotation line: id `{vid}_{k}` (k-th query of that video), video `{video_dir}/{vid}{ext}`."""
    lengths = read_durations(durations)
    policy = SkipPolicy(annotations, skip_bad)
    samples: list[Sample] = []
    per_video: dict[str, int] = {}
    path = Path(annotations)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            with policy.record():
                vid, start, end, sentence = _parse_line(line, where)
                if vid not in lengths:
                    raise DataError(f"{where}: no duration for video {vid!r} in {durations}")
                duration = lengths[vid]
                k = per_video.get(vid, 0)
                samples.append(build_sample(
                    where,
                    id=f"{vid}_{k}",
                    video=video_file(video_dir, vid, video_ext),
                    duration=duration,
                    task="temporal_grounding",
                    question=grounding_question(sentence),
                    intervals=[list(clamp_interval(start, end, duration, where))],
                    meta={"source": "charades_sta", "video_id": vid, "query": sentence},
                ))
                per_video[vid] = k + 1
    policy.finish(len(samples))
    return samples


def read_durations(path: str | os.PathLike) -> dict[str, float]:
    """{video_id: seconds} from a Charades CSV (`id`, `length`) or a JSON object."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        return {row["id"]: number(row["length"], "length", where) for where, row in read_csv(path, ("id", "length"))}
    raw = read_json(path)
    if not isinstance(raw, dict):
        raise DataError(f"{path}: expected a JSON object {{video_id: duration}}, got {type(raw).__name__}")
    out = {}
    for vid, value in raw.items():
        if isinstance(value, dict):  # {vid: {"duration": d, ...}}
            value = value.get("duration")
        out[vid] = number(value, f"duration of {vid!r}", str(path))
    return out


def _parse_line(line: str, where: str) -> tuple[str, float, float, str]:
    head, sep, sentence = line.strip().partition("##")
    if not sep:
        raise DataError(f"{where}: expected 'VIDEOID start end##sentence', found no '##' in {line.strip()!r}")
    parts = head.split()
    if len(parts) != 3:
        raise DataError(f"{where}: expected 'VIDEOID start end' before '##', got {head!r}")
    if not sentence.strip():
        raise DataError(f"{where}: empty sentence after '##'")
    vid, start, end = parts
    return vid, number(start, "start", where), number(end, "end", where), sentence.strip()
