"""A bounded LRU cache of decoded videos.

A prompt's video is decoded once per step and shared by its G rollouts, the log-prob passes and
the update forward (re-decoding per rollout is a known cost sink in public RL frameworks). The
key includes the file's size and mtime, so an edited file is never served stale.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass

from rlvid.data.video import DecodedVideo, VideoSampling, decode_video


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    evictions: int = 0


class VideoCache:
    """LRU cache of `DecodedVideo` bounded by the bytes of their frames."""

    def __init__(self, max_bytes: int = 2 << 30):
        self.max_bytes = max_bytes
        self.stats = CacheStats()
        self._items: OrderedDict[tuple, DecodedVideo] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

    def get(self, path: str | os.PathLike, sampling: VideoSampling) -> DecodedVideo:
        """The decoded video for (path, sampling), decoding it on a miss."""
        path = os.fspath(path)
        key = _key(path, sampling)
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
                self.stats.hits += 1
                return hit
        video = decode_video(path, sampling)
        with self._lock:
            self.stats.misses += 1
            if key not in self._items and video.nbytes <= self.max_bytes:
                self._items[key] = video
                self._bytes += video.nbytes
                self._evict()
        return video

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0

    def _evict(self) -> None:
        while self._bytes > self.max_bytes and self._items:
            _, old = self._items.popitem(last=False)
            self._bytes -= old.nbytes
            self.stats.evictions += 1


def _key(path: str, sampling: VideoSampling) -> tuple:
    try:
        st = os.stat(path)
        stamp = (st.st_size, st.st_mtime_ns)
    except OSError:
        stamp = (-1, -1)
    return (os.path.abspath(path), stamp, sampling)
