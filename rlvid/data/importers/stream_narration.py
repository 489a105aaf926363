"""Dense captions as a stream: VideoLLM-online's conversion of offline annotations into narration.

Each caption is said when its event has been seen to the end, so its `stream_events` entry is
due at the event's end time. Events that end together are said together (one entry, captions
joined in start order), because a streaming model answers once per moment. Used by the importers
that read dense captions (`activitynet_captions(..., with_stream_events=True)`, docs/streaming.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

NARRATION_QUESTION = "Narrate the video: describe each event as soon as it ends."


def narration_events(events: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """`[{due, content}]` from dense-caption events `[{start, end, caption}]`: each caption due at its end."""
    by_due: dict[float, list[tuple[float, str]]] = {}
    for ev in events:
        by_due.setdefault(float(ev["end"]), []).append((float(ev["start"]), str(ev["caption"]).strip()))
    return [{"due": due, "content": " ".join(c for _, c in sorted(said))} for due, said in sorted(by_due.items())]
