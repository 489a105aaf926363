"""Fixed streaming policies to compare a trained model with: `spam` (the answer after every chunk) and `silence`.

A timing F1 means something only above these: on 8-chunk alert streams, spam's precision is 1/8
and its recall 1, so F1 = 2/9 = 0.22; silence scores 0 (docs/streaming.md, Evidence).
"""

from __future__ import annotations

from collections.abc import Sequence

from rlvid.data.stream_transcript import StreamResponse, format_transcript
from rlvid.eval.streaming_metrics import streaming_metrics


def fixed_policy_metrics(clips: Sequence, chunk_seconds: float) -> dict[str, dict[str, float]]:
    """Streaming metrics of `spam` (each clip's first event's content after every chunk) and `silence`."""
    spam = [format_transcript([StreamResponse(round((k + 1) * chunk_seconds, 3), c.sample.stream_events[0].content)
                               for k in range(round(c.sample.duration / chunk_seconds))]) for c in clips]
    samples = [c.sample for c in clips]
    return {"spam": streaming_metrics(spam, samples), "silence": streaming_metrics([""] * len(samples), samples)}
