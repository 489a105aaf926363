"""NExT-GQA: QA CSV + grounding JSON -> grounded_qa samples.

The CSV (val.csv / test.csv) has video_id, frame_count, width, height, question, answer, qid,
type, a0..a4; `answer` is the option text (NExT-QA's own CSVs give the option index instead;
both are accepted). The grounding JSON (gsub_val.json) is {video_id: {"duration": d,
"location": {qid: [[s, e], ...]}, "fps": f}}. The answer is stored as the option text, its
letter in meta["answer_letter"], and the options are kept so rewards may accept either.
"""

from __future__ import annotations

import os

from rlvid.data.importers._common import (
    SkipPolicy,
    as_question,
    build_sample,
    clamp_interval,
    number,
    read_csv,
    read_json,
    video_file,
)
from rlvid.data.loaders import DataError
from rlvid.data.sample import OPTION_LETTERS, Sample

OPTION_COLUMNS = ("a0", "a1", "a2", "a3", "a4")
REQUIRED_COLUMNS = ("video_id", "question", "answer", "qid", *OPTION_COLUMNS)


def import_nextgqa(
    annotations: str | os.PathLike,
    grounding: str | os.PathLike,
    video_dir: str | os.PathLike,
    *,
    video_map: str | os.PathLike | None = None,
    video_ext: str = ".mp4",
    skip_bad: bool = False,
) -> list[Sample]:
    """One sample per CSV row, id `{video_id}_{qid}`; `video_map` (map_vid_vidorID.json) maps ids to sub-paths."""
    spans = read_json(grounding)
    if not isinstance(spans, dict):
        raise DataError(f"{grounding}: expected a JSON object {{video_id: {{duration, location}}}}")
    paths = read_json(video_map) if video_map is not None else {}
    policy = SkipPolicy(annotations, skip_bad)
    samples: list[Sample] = []
    for where, row in read_csv(annotations, REQUIRED_COLUMNS):
        with policy.record():
            vid, qid = row["video_id"].strip(), row["qid"].strip()
            duration, locations = _grounding_for(spans, vid, qid, grounding, where)
            options = [row[c].strip() for c in OPTION_COLUMNS if row.get(c, "").strip()]
            index = _answer_index(row["answer"], options, where)
            samples.append(build_sample(
                where,
                id=f"{vid}_{qid}",
                video=video_file(video_dir, str(paths.get(vid, vid)), video_ext),
                duration=duration,
                task="grounded_qa",
                question=as_question(row["question"]),
                options=options,
                answer=options[index],
                intervals=[list(clamp_interval(s, e, duration, where)) for s, e in locations],
                meta={
                    "source": "nextgqa", "video_id": vid, "qid": qid, "type": row.get("type", ""),
                    "answer_letter": OPTION_LETTERS[index],
                },
            ))
    policy.finish(len(samples))
    return samples


def _grounding_for(
    spans: dict, vid: str, qid: str, grounding: str | os.PathLike, where: str
) -> tuple[float, list[tuple[float, float]]]:
    entry = spans.get(vid)
    if not isinstance(entry, dict):
        raise DataError(f"{where}: video {vid!r} is not in {grounding}")
    duration = number(entry.get("duration"), f"duration of video {vid!r} in {grounding}", where)
    location = (entry.get("location") or {}).get(qid)
    if not isinstance(location, list) or not location:
        raise DataError(f"{where}: no location for video {vid!r} qid {qid!r} in {grounding}")
    out = []
    for k, span in enumerate(location):
        if not isinstance(span, list) or len(span) != 2:
            raise DataError(f"{where}: location[{k}] for qid {qid!r} must be [start, end], got {span!r}")
        out.append((number(span[0], f"location[{k}]", where), number(span[1], f"location[{k}]", where)))
    return duration, out


def _answer_index(answer: str, options: list[str], where: str) -> int:
    """The option the answer names: its text (NExT-GQA) or its 0-based index (NExT-QA)."""
    answer = answer.strip()
    if answer in options:
        return options.index(answer)
    if answer.isdigit() and int(answer) < len(options):
        return int(answer)
    raise DataError(f"{where}: answer {answer!r} is neither one of the options {options} nor an option index")
