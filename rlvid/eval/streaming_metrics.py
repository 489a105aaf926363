"""Streaming metrics: were the responses on time, how late were they, and were they right?

Over a set of transcripts (`<t=X.Xs> text` lines) and their samples' `stream_events`, with the
matching of the timing reward (rewards/timing.py: a response belongs to the latest event due
strictly before it; an event takes its earliest response):
- `timing_precision`: on-time responses (delay <= `tolerance`) / all responses;
- `timing_recall`: events answered on time / all events; `timing_f1` their harmonic mean;
- `mean_delay`: mean seconds from due time to the matched response, over answered events;
- `content`: mean over events of the on-time response's content score (`score_open`, 0 when
  not answered on time): MAGQA-style, one score per expected answer, so a stream with several
  answers counts each;
- `silent_fraction`: streams with no response at all.
Sums are pooled over all streams (micro averages), so many-event streams weigh more.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rewards.accuracy import score_open
from rewards.timing import match_responses
from rlvid.data.sample import Sample
from rlvid.data.stream_transcript import parse_transcript


def _events(sample: Sample | Mapping[str, Any]) -> list:
    return (sample.stream_events if isinstance(sample, Sample) else sample.get("stream_events")) or []


def _field(event: Any, name: str) -> Any:
    return event[name] if isinstance(event, Mapping) else getattr(event, name)


def streaming_metrics(transcripts: Sequence[str], samples: Sequence[Sample | Mapping[str, Any]],
                      tolerance: float = 1.0, content_metric: str = "exact") -> dict[str, float]:
    """The metrics of the module docstring for transcripts[i] of samples[i] (samples need `stream_events`)."""
    if len(transcripts) != len(samples):
        raise ValueError(f"{len(transcripts)} transcripts for {len(samples)} samples")
    n_resp = n_events = on_time = silent = 0
    delays: list[float] = []
    content = 0.0
    for text, sample in zip(transcripts, samples, strict=True):
        events = _events(sample)
        if not events:
            raise ValueError(f"sample {_field(sample, 'id')!r} has no stream_events")
        responses = parse_transcript(text)
        m = match_responses(responses, events)
        n_resp += len(responses)
        n_events += len(events)
        silent += not responses
        for r, e in zip(m.answered, events, strict=True):
            if r is None:
                continue
            delay = r.time - float(_field(e, "due"))
            delays.append(delay)
            if delay <= tolerance + 1e-6:
                on_time += 1
                content += score_open(r.text, str(_field(e, "content")), content_metric)
    precision = on_time / n_resp if n_resp else 0.0
    recall = on_time / n_events if n_events else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"timing_precision": precision, "timing_recall": recall, "timing_f1": f1,
            "mean_delay": sum(delays) / len(delays) if delays else float("nan"),
            "content": content / n_events if n_events else 0.0,
            "responses_per_stream": n_resp / len(samples) if samples else 0.0,
            "silent_fraction": silent / len(samples) if samples else 0.0}
