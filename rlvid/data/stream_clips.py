"""Streaming samples from data files: each `Sample` with `stream_events` and its video, as a `StreamClip`.

A streaming run reads `data.train` / `data.val` like any run (rlvid.data.recipe_data.load_split);
each video is decoded once at `fps` frames per second (evenly spaced over the whole video, frame
factor 1, small frames: the tiny streaming LM pools each frame to a few pixels), so frame i is
seen at about i / fps seconds and `stream_chunks` cuts it into chunks as it does synthetic
streams. The JSONL + MP4 of `write_streaming_data` and the importers' narration samples load this way.
"""

from __future__ import annotations

from collections.abc import Sequence

from rlvid.data.loaders import DataError, sample_location
from rlvid.data.sample import Sample
from rlvid.data.synthetic_streaming import StreamClip
from rlvid.data.video import VideoSampling, decode_video


def clips_from_samples(samples: Sequence[Sample], fps: float, frame_pixels: int = 32 * 32) -> list[StreamClip]:
    """One `StreamClip` per sample (frames [T, H, W, 3] uint8 at `fps`); a sample without `stream_events` is an
    error naming its file and line."""
    sampling = VideoSampling(fps=fps, min_frames=1, max_frames=100_000, total_pixels=10**12,
                             min_pixels=frame_pixels, max_pixels=frame_pixels, image_factor=8, frame_factor=1)
    clips = []
    for sample in samples:
        if not sample.stream_events:
            raise DataError(f"{sample_location(sample)}: sample {sample.id!r} has no stream_events; a streaming run "
                            "needs them (docs/streaming.md)")
        video = decode_video(sample.video, sampling)
        clips.append(StreamClip(sample, video.frames.permute(0, 2, 3, 1).contiguous(), fps))
    return clips
