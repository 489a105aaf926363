"""ActivityNet Captions: {video: {duration, timestamps, sentences}} -> dense_caption samples.

With `with_grounding=True` each sentence also becomes a temporal_grounding sample (the
"ActivityNet-tvg" use of the same annotations). With `with_stream_events=True` each video also
becomes a streaming narration sample (`{vid}_stream`: the same events, each caption due at its
event's end; rlvid/data/importers/stream_narration.py).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from rlvid.data.importers._common import (
    SkipPolicy,
    build_sample,
    clamp_interval,
    grounding_question,
    number,
    read_json,
    video_file,
)
from rlvid.data.importers.stream_narration import NARRATION_QUESTION, narration_events
from rlvid.data.loaders import DataError
from rlvid.data.sample import Sample
from rlvid.data.synthetic import DENSE_CAPTION_QUESTION


def import_activitynet_captions(
    annotations: str | os.PathLike,
    video_dir: str | os.PathLike,
    *,
    video_ext: str = ".mp4",
    with_grounding: bool = False,
    skip_bad: bool = False,
    references: Sequence[str | os.PathLike] | str | os.PathLike | None = None,
    with_stream_events: bool = False,
) -> list[Sample]:
    """One dense_caption sample per video (id = video id, events sorted by start), plus `{vid}_{k}` grounding ones.

    `references`: further annotation files of the same videos by other annotators (val_2.json
    beside val_1.json); a video's event lists from them become its `reference_events`, which the
    official SODA_c evaluation takes the best of.
    """
    raw = read_json(annotations)
    if not isinstance(raw, dict):
        raise DataError(f"{annotations}: expected a JSON object {{video_id: {{...}}}}, got {type(raw).__name__}")
    extra = _reference_events(references)
    policy = SkipPolicy(annotations, skip_bad)
    samples: list[Sample] = []
    for vid, record in raw.items():
        where = f"{annotations}[{vid!r}]"
        with policy.record():
            duration, spans = _parse_record(record, where)
            video = video_file(video_dir, vid, video_ext)
            meta = {"source": "activitynet_captions", "video_id": vid}
            events = sorted(spans, key=lambda ev: (ev["start"], ev["end"]))
            refs = [[{"start": ev["start"], "end": ev["end"], "caption": ev["caption"]} for ev in ref]
                    for ref in extra.get(vid, [])]
            new = [build_sample(where, id=vid, video=video, duration=duration, task="dense_caption",
                                question=DENSE_CAPTION_QUESTION, events=events, meta=meta,
                                reference_events=refs or None)]
            if with_grounding:
                new += [
                    build_sample(f"{where} sentence {k}", id=f"{vid}_{k}", video=video, duration=duration,
                                 task="temporal_grounding", question=grounding_question(ev["caption"]),
                                 intervals=[[ev["start"], ev["end"]]], meta={**meta, "query": ev["caption"]})
                    for k, ev in enumerate(spans)
                ]
            if with_stream_events:
                new.append(build_sample(f"{where} stream", id=f"{vid}_stream", video=video, duration=duration,
                                        task="dense_caption", question=NARRATION_QUESTION, events=events,
                                        stream_events=narration_events(events), meta=meta))
            samples += new
    policy.finish(len(samples))
    return samples


def _reference_events(references: Sequence[str | os.PathLike] | str | os.PathLike | None) -> dict[str, list]:
    """{video id: [event list per reference file that has the video]}, events sorted by start."""
    if references is None:
        return {}
    paths = [references] if isinstance(references, (str, os.PathLike)) else list(references)
    out: dict[str, list] = {}
    for path in paths:
        raw = read_json(path)
        if not isinstance(raw, dict):
            raise DataError(f"{path}: expected a JSON object {{video_id: {{...}}}}, got {type(raw).__name__}")
        for vid, record in raw.items():
            _, spans = _parse_record(record, f"{path}[{vid!r}]")
            out.setdefault(vid, []).append(sorted(spans, key=lambda ev: (ev["start"], ev["end"])))
    return out


def _parse_record(record: object, where: str) -> tuple[float, list[dict]]:
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected an object with duration, timestamps, sentences")
    for key in ("duration", "timestamps", "sentences"):
        if key not in record:
            raise DataError(f"{where}: missing '{key}'")
    duration = number(record["duration"], "duration", where)
    stamps, sentences = record["timestamps"], record["sentences"]
    if not isinstance(stamps, list) or not isinstance(sentences, list) or len(stamps) != len(sentences):
        raise DataError(f"{where}: 'timestamps' and 'sentences' must be lists of the same length")
    spans = []
    for k, (stamp, sentence) in enumerate(zip(stamps, sentences, strict=True)):
        if not isinstance(stamp, list) or len(stamp) != 2:
            raise DataError(f"{where}: timestamps[{k}] must be [start, end], got {stamp!r}")
        if not isinstance(sentence, str) or not sentence.strip():
            raise DataError(f"{where}: sentences[{k}] must be a non-empty string")
        start, end = clamp_interval(number(stamp[0], f"timestamps[{k}]", where),
                                    number(stamp[1], f"timestamps[{k}]", where), duration, f"{where} timestamps[{k}]")
        spans.append({"start": start, "end": end, "caption": sentence.strip()})
    return duration, spans
