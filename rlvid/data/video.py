"""Video probing, frame sampling and decoding with PyAV.

rlvid samples frames itself (by fps, within min/max frames and a total-pixel budget, the rules
of qwen-vl-utils that Temporal-R1 and Video-R1 train with) so that every sampled frame keeps its
absolute timestamp and one decode can be cached and shared by a group's rollouts and the
training forward. The processor then receives pre-sampled frames plus `VideoMetadata`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import av
import numpy as np
import torch
from transformers.video_utils import VideoMetadata

from rlvid.data.token_drop import TokenDrop, kept_frames
from rlvid.timing import subphase


class VideoError(ValueError):
    """A video that cannot be used: missing, empty, truncated or not a video. Names the path."""


@dataclass(frozen=True)
class VideoInfo:
    duration: float
    fps: float
    num_frames: int
    width: int
    height: int


@dataclass(frozen=True)
class VideoSampling:
    """How frames are sampled and sized; part of the cache key.

    Defaults are Temporal-R1's (2 fps, 2048x28x28 total pixels) with qwen-vl-utils' per-frame
    bounds. `image_factor` is patch_size x merge_size of the vision tower (28 for Qwen2.5-VL,
    32 for Qwen3-VL); `frame_factor` is its temporal patch size.
    """

    fps: float = 2.0
    min_frames: int = 4
    max_frames: int = 64
    total_pixels: int = 2048 * 28 * 28
    min_pixels: int = 128 * 28 * 28
    max_pixels: int = 768 * 28 * 28
    image_factor: int = 28
    frame_factor: int = 2
    drop: TokenDrop = TokenDrop()  # redundant frame-pair dropping, applied after decoding (rlvid.data.token_drop)


@dataclass
class DecodedVideo:
    """Sampled frames (uint8, [T, 3, H, W]) with their source indices and timestamps."""

    frames: torch.Tensor
    indices: list[int]
    timestamps: list[float]
    info: VideoInfo
    dropped_frames: int = 0  # sampled frames removed as redundant (sampling.drop)

    @property
    def nbytes(self) -> int:
        return self.frames.numel() * self.frames.element_size()

    def metadata(self) -> VideoMetadata:
        """The metadata transformers' video processors need for pre-sampled frames."""
        return VideoMetadata(
            total_num_frames=self.info.num_frames,
            fps=self.info.fps,
            width=self.info.width,
            height=self.info.height,
            duration=self.info.duration,
            video_backend="pyav",
            frames_indices=list(self.indices),
        )


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Read a video's header and first frame; raise VideoError naming the path if unusable."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise VideoError(f"{path}: video file not found")
    if os.path.getsize(path) == 0:
        raise VideoError(f"{path}: video file is empty (0 bytes)")
    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise VideoError(f"{path}: no video stream in file")
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 0)
            if fps <= 0:
                raise VideoError(f"{path}: video stream has no frame rate")
            num_frames = int(stream.frames)
            if num_frames <= 0:
                seconds = _container_seconds(container, stream)
                num_frames = int(round(seconds * fps))
            if num_frames <= 0:
                raise VideoError(f"{path}: video stream has no frames")
            first = next(container.decode(video=0), None)
            if first is None:
                raise VideoError(f"{path}: no frame could be decoded")
            return VideoInfo(num_frames / fps, fps, num_frames, stream.width, stream.height)
    except VideoError:
        raise
    except (av.FFmpegError, StopIteration, OSError) as err:
        raise VideoError(f"{path}: not a readable video ({err})") from err


def _container_seconds(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return 0.0


def num_sampled_frames(info: VideoInfo, sampling: VideoSampling) -> int:
    """Frames to sample: duration x fps within [min_frames, max_frames], a multiple of frame_factor."""
    ff = sampling.frame_factor
    lo = math.ceil(sampling.min_frames / ff) * ff
    hi = math.floor(min(sampling.max_frames, info.num_frames) / ff) * ff
    wanted = info.num_frames / info.fps * sampling.fps
    n = round(min(max(wanted, lo), max(hi, ff)) / ff) * ff
    return max(ff, n)


def sample_frame_indices(info: VideoInfo, sampling: VideoSampling) -> list[int]:
    """Evenly spaced source-frame indices covering the whole video (repeats if it is very short)."""
    n = num_sampled_frames(info, sampling)
    return np.linspace(0, info.num_frames - 1, n).round().astype(int).tolist()


def frame_size(height: int, width: int, num_frames: int, sampling: VideoSampling) -> tuple[int, int]:
    """Per-frame (height, width): a multiple of image_factor within the per-frame share of total_pixels."""
    share = sampling.total_pixels / num_frames * sampling.frame_factor
    max_pixels = max(min(sampling.max_pixels, share), sampling.min_pixels * 1.05)
    return smart_resize(height, width, sampling.image_factor, sampling.min_pixels, int(max_pixels))


def smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """Nearest size with both sides multiples of `factor` and area within [min_pixels, max_pixels]."""
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize as hf_smart_resize

    if min(height, width) < factor:  # HF's version refuses these; scale the short side up first
        scale = factor / min(height, width)
        height, width = math.ceil(height * scale), math.ceil(width * scale)
    return hf_smart_resize(height, width, factor=factor, min_pixels=min_pixels, max_pixels=max_pixels)


def decode_video(path: str | os.PathLike, sampling: VideoSampling) -> DecodedVideo:
    """Decode the sampled frames of one video, resized for the model, with their timestamps."""
    with subphase("decode"):
        return _decode_video(os.fspath(path), sampling)


def _decode_video(path: str, sampling: VideoSampling) -> DecodedVideo:
    info = probe_video(path)
    indices = sample_frame_indices(info, sampling)
    height, width = frame_size(info.height, info.width, len(indices), sampling)
    wanted = _positions(indices)
    frames: list[np.ndarray | None] = [None] * len(indices)
    last = indices[-1]
    try:
        with av.open(path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for i, frame in enumerate(container.decode(stream)):
                if i in wanted:
                    array = frame.to_ndarray(format="rgb24", width=width, height=height)
                    for pos in wanted[i]:
                        frames[pos] = array
                if i >= last:
                    break
    except av.FFmpegError as err:
        raise VideoError(f"{path}: decoding failed ({err})") from err
    missing = sum(f is None for f in frames)
    if missing:
        got = len(indices) - missing
        raise VideoError(f"{path}: truncated video: header says {info.num_frames} frames, decoded {got} of the "
                         f"{len(indices)} sampled ones")
    tensor = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).contiguous()
    timestamps = [idx / info.fps for idx in indices]
    video = DecodedVideo(tensor, indices, timestamps, info)
    return drop_redundant(video, sampling) if sampling.drop.enabled else video


def drop_redundant(video: DecodedVideo, sampling: VideoSampling) -> DecodedVideo:
    """The video without the frame pairs `sampling.drop` finds redundant; kept frames keep their indices/times."""
    keep = kept_frames(video.frames, sampling.drop, sampling.frame_factor, sampling.image_factor)
    if len(keep) == len(video.indices):
        return video
    return DecodedVideo(video.frames[keep].contiguous(), [video.indices[i] for i in keep],
                        [video.timestamps[i] for i in keep], video.info,
                        video.dropped_frames + len(video.indices) - len(keep))


def _positions(indices: list[int]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for pos, idx in enumerate(indices):
        out.setdefault(idx, []).append(pos)
    return out
