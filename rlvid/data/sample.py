"""One sample schema for every video task (DESIGN.md "Sample").

Importers turn public formats into `Sample`; the loader validates every field so a bad
annotation fails at load time with its file and line, never as a wrong label mid-training.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

TASKS = ("temporal_grounding", "mcq", "grounded_qa", "dense_caption", "open_qa", "numeric")
OPTION_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


class SampleError(ValueError):
    """A sample that cannot be used as it is; the message names the field and the source."""


@dataclass
class Event:
    """One dense-captioning event: an interval in seconds and its caption."""

    start: float
    end: float
    caption: str


@dataclass
class StreamEvent:
    """One thing a streaming model must say: `content`, due at `due` seconds (not before).

    A response counts when it comes in [due, due + tolerance] (the tolerance is the reward's and
    the metric's setting, not the sample's); VideoLLM-online's narration makes a caption due when
    its event ends, an alert is due when the awaited event starts.
    """

    due: float
    content: str


@dataclass
class Sample:
    """A video-task sample.

    `answer` holds the textual answer (an option letter for `mcq`, the answer text for open and
    grounded QA, a number as text for `numeric`); `intervals` hold ground-truth [start, end]
    seconds (grounding, grounded QA); `events` hold dense-captioning events, and
    `reference_events` optional further event lists of the same video by other annotators
    (ActivityNet Captions val_2 beside val_1): evaluation takes the best one, as the official
    SODA evaluation does. `stream_events` make the sample a streaming task: the video is watched
    chunk by chunk and each event's content must be said at its due time (docs/streaming.md).
    """

    id: str
    video: str
    duration: float
    task: str
    question: str
    options: list[str] | None = None
    answer: str | None = None
    intervals: list[tuple[float, float]] | None = None
    events: list[Event] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    reference_events: list[list[Event]] | None = None
    stream_events: list[StreamEvent] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if self.intervals is not None:
            d["intervals"] = [list(iv) for iv in self.intervals]
        if self.reference_events is None:
            del d["reference_events"]  # most samples have none; keep their records as before
        if self.stream_events is None:
            del d["stream_events"]
        return d

    @classmethod
    def from_dict(cls, raw: Any, where: str = "<sample>") -> Sample:
        """Validate and build a sample; `where` (e.g. "train.jsonl:12") prefixes every error."""
        if not isinstance(raw, dict):
            raise SampleError(f"{where}: expected a JSON object, got {type(raw).__name__}")
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(raw) - known
        if unknown:
            raise SampleError(
                f"{where}: unknown field(s) {sorted(unknown)}; allowed: {sorted(known)} "
                "(put extra information under 'meta')"
            )
        for key in ("id", "video", "duration", "task", "question"):
            if raw.get(key) is None:
                raise SampleError(f"{where}: missing required field '{key}'")
        sid = _as_str(raw["id"], "id", where)
        video = _as_str(raw["video"], "video", where)
        question = _as_str(raw["question"], "question", where)
        task = _as_str(raw["task"], "task", where)
        if task not in TASKS:
            raise SampleError(f"{where}: field 'task' is {task!r}; allowed: {list(TASKS)}")
        duration = _as_float(raw["duration"], "duration", where)
        if duration <= 0:
            raise SampleError(f"{where}: field 'duration' must be > 0, got {duration}")

        options = raw.get("options")
        if options is not None:
            if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
                raise SampleError(f"{where}: field 'options' must be a list of strings")
            if not 2 <= len(options) <= len(OPTION_LETTERS):
                raise SampleError(f"{where}: field 'options' needs 2..26 entries, got {len(options)}")
        answer = raw.get("answer")
        if answer is not None:
            if isinstance(answer, (int, float)) and not isinstance(answer, bool):
                answer = str(answer)
            answer = _as_str(answer, "answer", where)

        intervals = raw.get("intervals")
        if intervals is not None:
            if not isinstance(intervals, list):
                raise SampleError(f"{where}: field 'intervals' must be a list of [start, end]")
            intervals = [_interval(iv, f"intervals[{i}]", duration, where) for i, iv in enumerate(intervals)]

        events = raw.get("events")
        if events is not None:
            if not isinstance(events, list):
                raise SampleError(f"{where}: field 'events' must be a list")
            events = [_event(ev, i, duration, where) for i, ev in enumerate(events)]

        meta = raw.get("meta") or {}
        if not isinstance(meta, dict):
            raise SampleError(f"{where}: field 'meta' must be an object")

        references = raw.get("reference_events")
        if references is not None:
            if not isinstance(references, list) or not all(isinstance(r, list) for r in references):
                raise SampleError(f"{where}: field 'reference_events' must be a list of event lists")
            references = [
                [_event(ev, i, duration, where, f"reference_events[{k}]") for i, ev in enumerate(ref)]
                for k, ref in enumerate(references)
            ]

        stream = raw.get("stream_events")
        if stream is not None:
            if not isinstance(stream, list) or not stream:
                raise SampleError(f"{where}: field 'stream_events' must be a non-empty list of {{due, content}}")
            stream = [_stream_event(ev, i, duration, where) for i, ev in enumerate(stream)]

        sample = cls(sid, video, duration, task, question, options, answer, intervals, events, meta, references,
                     stream)
        _check_task_fields(sample, where)
        return sample


def _check_task_fields(s: Sample, where: str) -> None:
    need: dict[str, tuple[str, ...]] = {
        "temporal_grounding": ("intervals",),
        "mcq": ("options", "answer"),
        "grounded_qa": ("answer", "intervals"),
        "dense_caption": ("events",),
        "open_qa": ("answer",),
        "numeric": ("answer",),
    }
    for key in need[s.task]:
        if not getattr(s, key):
            raise SampleError(f"{where}: task '{s.task}' needs field '{key}'")
    if s.task == "mcq":
        letters = OPTION_LETTERS[: len(s.options or [])]
        if s.answer not in letters:
            raise SampleError(f"{where}: field 'answer' must be one of {list(letters)} for mcq, got {s.answer!r}")
    if s.task == "numeric":
        _as_float(s.answer, "answer", where)


def _as_str(value: Any, key: str, where: str) -> str:
    if not isinstance(value, str):
        raise SampleError(f"{where}: field '{key}' must be a string, got {type(value).__name__}")
    return value


def _as_float(value: Any, key: str, where: str) -> float:
    if isinstance(value, bool):
        raise SampleError(f"{where}: field '{key}' must be a number, got bool")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise SampleError(f"{where}: field '{key}' must be a number, got {value!r}") from None
    if not math.isfinite(out):
        raise SampleError(f"{where}: field '{key}' must be finite, got {value!r}")
    return out


def _interval(iv: Any, key: str, duration: float, where: str) -> tuple[float, float]:
    if not isinstance(iv, (list, tuple)) or len(iv) != 2:
        raise SampleError(f"{where}: field '{key}' must be [start, end], got {iv!r}")
    start, end = _as_float(iv[0], key, where), _as_float(iv[1], key, where)
    if start > end:
        raise SampleError(f"{where}: field '{key}' is reversed: start {start} > end {end}")
    tol = 1e-3 * max(1.0, duration)
    if start < -tol or end > duration + tol:
        raise SampleError(f"{where}: field '{key}' [{start}, {end}] lies outside the video (duration {duration})")
    return (max(0.0, start), min(duration, end))


def _event(ev: Any, i: int, duration: float, where: str, name: str = "events") -> Event:
    key = f"{name}[{i}]"
    if not isinstance(ev, dict):
        raise SampleError(f"{where}: field '{key}' must be an object with start, end, caption")
    for part in ("start", "end", "caption"):
        if part not in ev:
            raise SampleError(f"{where}: field '{key}' is missing '{part}'")
    start, end = _interval([ev["start"], ev["end"]], key, duration, where)
    return Event(start, end, _as_str(ev["caption"], f"{key}.caption", where))


def _stream_event(ev: Any, i: int, duration: float, where: str) -> StreamEvent:
    key = f"stream_events[{i}]"
    if not isinstance(ev, dict) or set(ev) != {"due", "content"}:
        raise SampleError(f"{where}: field '{key}' must be an object with exactly 'due' and 'content', got {ev!r}")
    due = _as_float(ev["due"], f"{key}.due", where)
    tol = 1e-3 * max(1.0, duration)
    if due < -tol or due > duration + tol:
        raise SampleError(f"{where}: field '{key}.due' {due} lies outside the video (duration {duration})")
    return StreamEvent(min(max(due, 0.0), duration), _as_str(ev["content"], f"{key}.content", where))
