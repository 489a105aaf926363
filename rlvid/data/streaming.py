"""Timestamped streaming input: a video fed as chunks of frames, each after its start time in text.

Streaming VideoLLMs (VideoLLM-online, TimeChat-Online, LiveCC) read a video as a stream of frame
chunks with their times; for grounding, the time written next to the frames is what the answer
refers to. With `data.video.streaming: true` the user message's single video part becomes

    <t=0.0s> [video chunk 0] <t=1.0s> [video chunk 1] ... <question>

one video item per chunk of `stream_chunk_seconds` (whole temporal patches: a chunk holds the
frame pairs whose first frame falls in its time window; with token dropping, empty windows are
skipped and a chunk's label is the true time of its first kept frame).

Qwen2.5-VL has no textual time: this option is how it gets one (an input format, not something
it was pre-trained on). Qwen3-VL's processor already writes every temporal patch's timestamp
(`<0.5 seconds>`) between the frames, which is this format natively; for processors that do that
(`needs_text_timestamps` is False) the option changes nothing and the single video is kept.
"""

from __future__ import annotations

import math

from rlvid.data.video import DecodedVideo, VideoInfo


def needs_text_timestamps(processor) -> bool:
    """False for processors that already interleave per-frame timestamps (Qwen3-VL)."""
    return not hasattr(processor, "_calculate_timestamps")


def timestamp_label(seconds: float) -> str:
    return f"<t={seconds:.1f}s>"


def chunk_video(video: DecodedVideo, chunk_seconds: float, frame_factor: int = 2) -> list[DecodedVideo]:
    """Consecutive temporal patches grouped by `floor(start time / chunk_seconds)`; times and indices kept."""
    if chunk_seconds <= 0:
        raise ValueError(f"stream_chunk_seconds must be > 0, got {chunk_seconds}")
    n = len(video.indices)
    groups: list[list[int]] = []
    last_window = None
    for start in range(0, n - n % frame_factor, frame_factor):
        window = math.floor(video.timestamps[start] / chunk_seconds + 1e-9)
        if window != last_window:
            groups.append([])
            last_window = window
        groups[-1].extend(range(start, start + frame_factor))
    step = video.info.num_frames / max(n + video.dropped_frames, 1)  # source frames per sampled frame
    return [_sub_video(video, g, step) for g in groups]


def _sub_video(video: DecodedVideo, keep: list[int], step: float) -> DecodedVideo:
    """Frames `keep` of `video` as a video of their own, whose sampled fps is the original sampling rate."""
    span = max(len(keep), round(len(keep) * step))
    info = VideoInfo(span / video.info.fps, video.info.fps, span, video.info.width, video.info.height)
    return DecodedVideo(video.frames[keep], [video.indices[i] for i in keep], [video.timestamps[i] for i in keep],
                        info)


def stream_messages(messages: list[dict], chunks: list[DecodedVideo]) -> list[dict]:
    """`messages` with the (single) video part replaced by alternating time labels and video chunks."""
    out = []
    for message in messages:
        content = message.get("content")
        if not isinstance(content, list):
            out.append(message)
            continue
        parts = []
        for part in content:
            if part.get("type") == "video":
                for chunk in chunks:
                    parts += [{"type": "text", "text": timestamp_label(chunk.timestamps[0])}, {"type": "video"}]
            else:
                parts.append(part)
        out.append(dict(message, content=parts))
    return out
