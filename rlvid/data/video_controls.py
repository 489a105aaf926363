"""Control copies of a video dataset: the same samples and labels with blank or frame-shuffled videos.

A model that reads the video must lose its accuracy on them (issue 17): on blank videos nothing says
when the event is, and on shuffled ones the pixels point at the wrong time. A model that only learned
where answers usually lie scores the same as on the real videos.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import av
import numpy as np

from rlvid.data.loaders import load_samples, write_jsonl
from rlvid.data.synthetic import BACKGROUND, encode_mp4

CONTROLS = ("blank", "shuffled")


def write_control_set(jsonl: str | Path, out_dir: str | Path, control: str, *, seed: int = 0,
                      block: int = 2) -> Path:
    """Copy `jsonl`'s samples to `out_dir/<split name>.jsonl` with control videos under `out_dir/videos/`.

    `blank`: every frame is the synthetic background. `shuffled`: blocks of `block` frames (one temporal
    patch of Qwen2.5-VL / Qwen3-VL) in a random order drawn from (`seed`, sample index), never the original
    order when there are at least two blocks. Labels are kept, so scores measure what the pixels contributed.
    """
    if control not in CONTROLS:
        raise ValueError(f"unknown control {control!r}; allowed: {list(CONTROLS)}")
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    jsonl, out = Path(jsonl), Path(out_dir)
    samples = load_samples(str(jsonl), split=jsonl.stem).samples
    (out / "videos").mkdir(parents=True, exist_ok=True)
    copies = []
    for i, sample in enumerate(samples):
        frames, fps = _read_frames(sample.video)
        if control == "blank":
            frames = [np.full_like(f, BACKGROUND) for f in frames]
        else:
            frames = _shuffle_blocks(frames, block, np.random.default_rng([seed, i]))
        video = Path("videos") / f"{control}-{i:05d}.mp4"
        encode_mp4(out / video, frames, fps)
        copies.append(dataclasses.replace(sample, video=video.as_posix()))
    return write_jsonl(copies, out / jsonl.name)


def _read_frames(path: str) -> tuple[list[np.ndarray], float]:
    with av.open(path) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate)
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    if not frames:
        raise ValueError(f"{path}: no frames")
    return frames, fps


def _shuffle_blocks(frames: list[np.ndarray], block: int, rng: np.random.Generator) -> list[np.ndarray]:
    blocks = [frames[i:i + block] for i in range(0, len(frames), block)]
    order = list(range(len(blocks)))
    if len(blocks) >= 2:
        while order == sorted(order):
            order = [int(j) for j in rng.permutation(len(blocks))]
    return [f for j in order for f in blocks[j]]
