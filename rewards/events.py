"""Read dense-captioning event lists (interval + caption) from answers and from data columns.

Uses the interval grammar of `rewards.parsing`, so an event's times are written the same ways a
grounding answer's are.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from rewards.parsing import PAIR_RE, to_seconds
from rlvid.data.sample import Event

_CAPTION_TRIM = " \t\n,;:.-\u2013\u2014|*()[]"
_ENUM_TAIL_RE = re.compile(r"\n\s*(?:\d+[.)]?|[-*\u2022])?\s*$")  # the next item's list marker


def parse_events(text: str, duration: float | None = None, fractions: bool = False) -> list[Event]:
    """Events (interval + caption) from a dense-captioning answer.

    Accepts a JSON list of objects (`start`/`end` or `timestamp: [s, e]`, and `caption` or
    `sentence`), or text where each interval is followed by its caption (`0.0 - 12.5 seconds, a
    man ...`, one per line or run together), or preceded by it (`a man ... (0.0 - 12.5)`).
    """
    if "{" in text:
        events = _json_events(text, duration, fractions)
        if events is not None:
            return events
    matches = list(PAIR_RE.finditer(text))
    if not matches:
        return []
    spans = [
        (to_seconds(m[1], m[2], duration, fractions), to_seconds(m[3], m[4], duration, fractions)) for m in matches
    ]
    head = text[: matches[0].start()].strip(_CAPTION_TRIM)
    tail = text[matches[-1].end() :].strip(_CAPTION_TRIM)
    chunks = [text[a.end() : b.start()] for a, b in zip(matches, matches[1:], strict=False)]
    if head and not tail:  # captions precede their intervals
        captions = [head] + chunks
    else:
        captions = chunks + [text[matches[-1].end() :]]
    return [
        Event(s, e, _clean_caption(c))
        for (s, e), c in zip(spans, captions, strict=True)
    ]


def _clean_caption(chunk: str) -> str:
    return _ENUM_TAIL_RE.sub("", chunk).strip(_CAPTION_TRIM)


def _json_events(text: str, duration: float | None, fractions: bool) -> list[Event] | None:
    start, end = text.find("["), text.rfind("]")
    if start == -1 or end <= start:
        return None
    try:
        raw = json.loads(text[start : end + 1])
    except ValueError:
        return None
    if not isinstance(raw, list) or not all(isinstance(x, Mapping) for x in raw):
        return None
    out = []
    for item in raw:
        try:
            if "timestamp" in item:
                s, e = item["timestamp"]
            else:
                s = item.get("start", item.get("start_time"))
                e = item.get("end", item.get("end_time"))
            caption = item.get("caption", item.get("sentence", ""))
            s, e = to_seconds(str(s), "", duration, fractions), to_seconds(str(e), "", duration, fractions)
        except (TypeError, ValueError, KeyError):
            continue
        out.append(Event(s, e, str(caption)))
    return out


def as_events(items: Iterable[Any] | None) -> list[Event]:
    """Ground-truth events from a column item: `Event` objects, dicts {start, end, caption}, or
    [start, end, caption] triples."""
    out = []
    for ev in items or ():
        if isinstance(ev, Event):
            out.append(ev)
        elif isinstance(ev, Mapping):
            out.append(Event(float(ev["start"]), float(ev["end"]), str(ev.get("caption", ""))))
        else:
            s, e, c = ev
            out.append(Event(float(s), float(e), str(c)))
    return out
