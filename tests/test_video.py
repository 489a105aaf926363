"""Frame sampling rules, timestamps, bad video files and the decode cache."""

from __future__ import annotations

import av
import numpy as np
import pytest
from corrupt_videos import make_corrupt_videos

from rlvid.data import video_cache as cache_module
from rlvid.data.synthetic import encode_mp4
from rlvid.data.video import (
    VideoError,
    VideoInfo,
    VideoSampling,
    decode_video,
    frame_size,
    probe_video,
    sample_frame_indices,
)
from rlvid.data.video_cache import VideoCache

SMALL = VideoSampling(min_pixels=4 * 28 * 28, total_pixels=256 * 28 * 28)


def _ramp_frames(n: int, w: int = 64, h: int = 48) -> list[np.ndarray]:
    """Frame i has grey level 3*i, so a decoded frame tells which source frame it was."""
    return [np.full((h, w, 3), 3 * i, dtype=np.uint8) for i in range(n)]


@pytest.fixture(scope="module")
def ramp_video(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "ramp.mp4"
    return encode_mp4(path, _ramp_frames(80), fps=8, crf=0)


def test_probe_reads_duration_fps_and_size(ramp_video):
    info = probe_video(ramp_video)
    assert info == VideoInfo(duration=10.0, fps=8.0, num_frames=80, width=64, height=48)


@pytest.mark.parametrize(
    ("seconds", "sampling", "expected"),
    [
        (10.0, VideoSampling(fps=2.0), 20),  # duration x fps
        (1.0, VideoSampling(fps=2.0, min_frames=4), 4),  # raised to min_frames
        (60.0, VideoSampling(fps=2.0, max_frames=16), 16),  # capped by max_frames
        (3.3, VideoSampling(fps=2.0, min_frames=2), 6),  # rounded to the temporal patch (2)
        (10.0, VideoSampling(fps=1.0, frame_factor=1), 10),
    ],
)
def test_frame_count_rules(seconds, sampling, expected):
    info = VideoInfo(seconds, 30.0, int(seconds * 30), 640, 480)
    indices = sample_frame_indices(info, sampling)
    assert len(indices) == expected
    assert indices[0] == 0 and indices[-1] == info.num_frames - 1
    assert indices == sorted(indices)


def test_frame_size_respects_factor_and_total_pixel_budget():
    sampling = VideoSampling()  # Temporal-R1: 2048x28x28 total pixels
    for frames in (8, 32, 64):
        h, w = frame_size(720, 1280, frames, sampling)
        assert h % 28 == 0 and w % 28 == 0
        per_frame_cap = max(min(sampling.max_pixels, sampling.total_pixels / frames * 2), sampling.min_pixels * 1.05)
        assert h * w <= per_frame_cap
        assert abs(w / h - 1280 / 720) < 0.2
    # a tiny frame is scaled up to the minimum
    h, w = frame_size(20, 30, 4, VideoSampling(min_pixels=56 * 56))
    assert h * w >= 56 * 56 and h % 28 == 0 and w % 28 == 0


def test_decoded_frames_carry_their_source_timestamps(ramp_video):
    video = decode_video(ramp_video, SMALL)
    assert video.indices == sample_frame_indices(probe_video(ramp_video), SMALL)
    assert video.timestamps == [i / 8.0 for i in video.indices]
    assert video.frames.shape[0] == 20 and video.frames.shape[1] == 3
    # grey level identifies the source frame: decoded frame k really is source frame indices[k]
    levels = video.frames.float().mean(dim=(1, 2, 3)).numpy()
    np.testing.assert_allclose(levels, [3 * i for i in video.indices], atol=2.0)
    meta = video.metadata()
    assert meta.frames_indices == video.indices and meta.fps == 8.0 and meta.total_num_frames == 80


@pytest.mark.parametrize("kind", ["missing", "empty", "truncated", "not_video"])
def test_bad_video_files_raise_naming_the_path(tmp_path, kind):
    paths = make_corrupt_videos(tmp_path)
    path = paths[kind]
    with pytest.raises(VideoError) as err:
        decode_video(path, SMALL)
    assert str(path) in str(err.value)


def test_truncated_faststart_video_is_reported_not_silently_short(tmp_path):
    path = tmp_path / "faststart.mp4"
    with av.open(str(path), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=8, width=64, height=48, pix_fmt="yuv420p")
        for frame in _ramp_frames(80):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoError, match="faststart.mp4"):
        decode_video(path, SMALL)


def test_cache_decodes_once_for_a_group_of_eight(ramp_video, monkeypatch):
    calls = []
    real = cache_module.decode_video
    monkeypatch.setattr(cache_module, "decode_video", lambda p, s: calls.append(p) or real(p, s))
    cache = VideoCache()
    group = [cache.get(ramp_video, SMALL) for _ in range(8)]
    assert len(calls) == 1
    assert all(v is group[0] for v in group)
    assert cache.stats.hits == 7 and cache.stats.misses == 1
    # other sampling options are another entry
    cache.get(ramp_video, VideoSampling(fps=1.0, min_pixels=4 * 28 * 28))
    assert len(calls) == 2


def test_cache_is_bounded_in_bytes(ramp_video, tmp_path):
    other = encode_mp4(tmp_path / "other.mp4", _ramp_frames(80)[::-1], fps=8)
    one = decode_video(ramp_video, SMALL).nbytes
    cache = VideoCache(max_bytes=int(one * 1.5))
    cache.get(ramp_video, SMALL)
    cache.get(other, SMALL)
    assert cache.nbytes <= cache.max_bytes
    assert cache.stats.evictions == 1 and len(cache) == 1
