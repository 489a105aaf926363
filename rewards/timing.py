"""`stream_timing` and `stream_content`: was each streaming answer said on time, and was it right?

A streaming completion is a transcript (`<t=4.0s> red circle` per response, rlvid/data/
stream_transcript.py); the sample's `stream_events` say what is due when. Responses are matched
to events by `match_responses`:
- a response belongs to the latest event due strictly before it (events sorted by due time): a
  response at the due time itself was said before the model could have seen the event (its
  time is the end of the last chunk it had seen), so it is early;
- an event takes the earliest response that belongs to it; its delay is `time - due`;
- a response before the first due time is *early*; a further response to an already answered
  event is *spurious* (a repeat, or speech with nothing new to say).

`stream_timing` = mean over events of the credit (1 within `tolerance` of the due time, then
`exp(-(delay - tolerance) / decay)`, 0 when unanswered) minus `early_penalty` per early and
`spurious_penalty` per spurious response and `miss_penalty` per unanswered event, all divided by
the number of events, so the range is the same for one and for many events. With a miss penalty,
silence scores low as well as spamming (-miss_penalty and about -spurious_penalty per chunk).
`stream_content` = mean over events of the matched
response's `score_open` against the event's content (0 when unanswered). Samples without
`stream_events` get None (the rewards do not apply). With `timed: true`, each content score is
scaled by its response's timing credit. The streaming metrics (rlvid/eval/
streaming_metrics.py) use the same matching.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rewards.accuracy import score_open
from rewards.columns import check_choice, column
from rlvid.data.stream_transcript import StreamResponse, parse_transcript

OPEN_METRICS = ("exact", "rouge_l")


@dataclass
class StreamMatch:
    """Which response answered each event (None: unanswered), and the unmatched responses."""

    answered: list[StreamResponse | None]
    early: list[StreamResponse]
    spurious: list[StreamResponse]


def _due(event: Any) -> float:
    return float(event["due"] if isinstance(event, dict) else event.due)


def _content(event: Any) -> str:
    return str(event["content"] if isinstance(event, dict) else event.content)


def match_responses(responses: list[StreamResponse], events: list[Any]) -> StreamMatch:
    """Match responses to events (`StreamEvent`s or {due, content} dicts) as the module docstring says."""
    order = sorted(range(len(events)), key=lambda i: _due(events[i]))
    answered: list[StreamResponse | None] = [None] * len(events)
    early, spurious = [], []
    for r in sorted(responses, key=lambda r: r.time):
        owners = [i for i in order if _due(events[i]) < r.time - 1e-6]
        if not owners:
            early.append(r)
        elif answered[owners[-1]] is None:
            answered[owners[-1]] = r
        else:
            spurious.append(r)
    return StreamMatch(answered, early, spurious)


def timing_credit(delay: float, tolerance: float, decay: float) -> float:
    """1 within `tolerance` seconds after the due time, then exponentially less."""
    if delay <= tolerance + 1e-6:
        return 1.0
    return math.exp(-(delay - tolerance) / decay) if decay > 0 else 0.0


def stream_timing_reward(
    completions: list[str],
    *,
    stream_events: list[Any] | None = None,
    tolerance: float = 1.0,
    decay: float = 1.0,
    early_penalty: float = 0.5,
    spurious_penalty: float = 0.5,
    miss_penalty: float = 0.0,
    **kwargs: Any,
) -> list[float | None]:
    """Timing of each transcript's responses against its sample's `stream_events` (module docstring)."""
    if min(tolerance, decay, early_penalty, spurious_penalty, miss_penalty) < 0:
        raise ValueError("stream_timing: tolerance, decay and the penalties must be >= 0")

    def score(m: StreamMatch, events: list[Any]) -> float:
        credit = sum(timing_credit(r.time - _due(e), tolerance, decay)
                     for r, e in zip(m.answered, events, strict=True) if r is not None)
        missed = sum(r is None for r in m.answered)
        penalty = early_penalty * len(m.early) + spurious_penalty * len(m.spurious) + miss_penalty * missed
        return (credit - penalty) / len(events)

    return per_stream(completions, stream_events, score)


def stream_content_reward(
    completions: list[str],
    *,
    stream_events: list[Any] | None = None,
    metric: str = "exact",
    timed: bool = False,
    tolerance: float = 1.0,
    decay: float = 1.0,
    **kwargs: Any,
) -> list[float | None]:
    """Mean over events of the matched response's content score (`score_open`; 0 when unanswered).

    With `timed`, each score is multiplied by the response's timing credit (`timing_credit` with
    `tolerance`, `decay`): a right answer said late earns little, so "wait and answer at the end"
    (where the answer is always visible) is not rewarded for its content.
    """
    check_choice("metric", metric, OPEN_METRICS)

    def weight(r: StreamResponse, e: Any) -> float:
        return timing_credit(r.time - _due(e), tolerance, decay) if timed else 1.0

    def score(m: StreamMatch, events: list[Any]) -> float:
        return sum(weight(r, e) * score_open(r.text, _content(e), metric)
                   for r, e in zip(m.answered, events, strict=True) if r is not None) / len(events)

    return per_stream(completions, stream_events, score)


def per_stream(completions: list[str], stream_events: list[Any] | None,
               score: Callable[[StreamMatch, list[Any]], float]) -> list[float | None]:
    """`score(matched responses, events)` for each transcript; None where the sample has no stream events."""
    out: list[float | None] = []
    for text, events in zip(completions, column(stream_events, len(completions), "stream_events"), strict=True):
        out.append(score(match_responses(parse_transcript(text), events), events) if events else None)
    return out
