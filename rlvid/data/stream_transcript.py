"""A streaming trajectory as text: one line per response, `<t=4.0s> red circle`.

The rollout writes it, the timing and content rewards and the streaming metrics read it, so a
streaming run is scored through the same `rewards.score` path as every other completion. The
time is the stream time at which the model spoke: the end of the last chunk it had seen.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rlvid.data.streaming import timestamp_label

_LINE = re.compile(r"^\s*<t=(-?\d+(?:\.\d+)?)s>\s?(.*)$")


@dataclass(frozen=True)
class StreamResponse:
    """What the model said (`text`) and when (`time`, seconds into the stream)."""

    time: float
    text: str


def format_transcript(responses: list[StreamResponse]) -> str:
    """One `<t=X.Xs> text` line per response, in time order; the empty string for a silent stream."""
    return "\n".join(f"{timestamp_label(r.time)} {r.text}" for r in responses)


def parse_transcript(text: str) -> list[StreamResponse]:
    """The responses of a transcript; lines without a time label are ignored (they were never said)."""
    out = []
    for line in (text or "").splitlines():
        m = _LINE.match(line)
        if m:
            out.append(StreamResponse(float(m.group(1)), m.group(2).strip()))
    return sorted(out, key=lambda r: r.time)
