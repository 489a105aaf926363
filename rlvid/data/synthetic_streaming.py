"""Synthetic streaming tasks: clips whose questions must be answered when things happen.

Three kinds, after the streaming papers (docs/streaming.md):
- `alert` (answer when it happens): "Tell me when the red circle appears." One event, due when
  the circle appears; distractor shapes come and go before and after.
- `narration` (VideoLLM-online's conversion of dense captions): shapes appear one after another;
  each caption ("blue square") is due when its shape disappears.
- `magqa` (MMDuet's multi-answer grounded QA): "What colour is the circle? Answer each time it
  changes." One answer per colour, due when the circle takes it.

Frames are drawn in memory (`StreamClip.frames`, RGB uint8) so a CPU experiment needs no
decoding; `write_streaming_data` also writes them as MP4 with the `Sample` records as JSONL.
Events start on whole chunk boundaries (`chunk_seconds`) so the first chunk that shows an
event is well defined.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rlvid.data.sample import Event, Sample, StreamEvent
from rlvid.data.synthetic import encode_mp4

STREAM_KINDS = ("alert", "narration", "magqa")
COLOURS = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (50, 80, 230), "yellow": (230, 210, 40)}
SHAPES = ("circle", "square")
SHAPE_SIZE = 0.3  # radius / frame side: 10 pixels of 32, a cue that survives 4x4 pooling (docs/streaming.md)
BACKGROUND = 110


@dataclass
class StreamClip:
    """A streaming sample with its frames (T, H, W, 3) sampled at `fps`."""

    sample: Sample
    frames: np.ndarray
    fps: float


@dataclass
class _Shape:
    colour: str
    shape: str
    first: int  # first frame shown
    stop: int  # first frame not shown
    xy: tuple[int, int]


def make_stream_clips(n: int, kinds: tuple[str, ...] = ("alert",), *, seed: int = 0, num_chunks: int = 8,
                      chunk_seconds: float = 1.0, fps: float = 2.0, size: int = 32,
                      shape_size: float = SHAPE_SIZE) -> list[StreamClip]:
    """`n` clips cycling over `kinds`, each `num_chunks * chunk_seconds` long; deterministic in `seed`.

    `shape_size` is a shape's radius (half its side) as a fraction of the frame's side.
    """
    unknown = [k for k in kinds if k not in STREAM_KINDS]
    if unknown or not kinds:
        raise ValueError(f"unknown streaming kind(s) {unknown}; known: {list(STREAM_KINDS)}")
    per_chunk = round(chunk_seconds * fps)
    if per_chunk < 1 or abs(per_chunk - chunk_seconds * fps) > 1e-6:
        raise ValueError(f"chunk_seconds * fps must be a whole number of frames, got {chunk_seconds} * {fps}")
    if not 0 < shape_size <= 0.5:
        raise ValueError(f"shape_size must be in (0, 0.5], got {shape_size}")
    if num_chunks < 3:
        raise ValueError(f"num_chunks must be >= 3, got {num_chunks}")
    rng = np.random.default_rng(seed)
    radius = max(1, round(size * shape_size))
    clips = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        shapes, question, events, task_fields = _KIND[kind](rng, num_chunks, per_chunk, size, radius)
        frames = _render(shapes, num_chunks * per_chunk, size, radius)
        duration = num_chunks * chunk_seconds
        stream = [StreamEvent(round(f / fps, 3), c) for f, c in events]
        sample = Sample(f"stream_{kind}_{seed}_{i}", f"stream_{kind}_{seed}_{i}.mp4", duration, question=question,
                        stream_events=stream, meta={"stream_kind": kind}, **task_fields(fps))
        clips.append(StreamClip(sample, frames, fps))
    return clips


def write_streaming_data(out_dir: str | Path, clips: list[StreamClip], split: str = "train") -> Path:
    """MP4s and `<split>.jsonl` of `clips` under `out_dir` (paths in the records are relative to it)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{split}.jsonl"
    with path.open("w") as f:
        for clip in clips:
            encode_mp4(out / clip.sample.video, clip.frames, clip.fps)
            f.write(json.dumps(clip.sample.to_dict()) + "\n")
    return path


def _alert(rng: np.random.Generator, num_chunks: int, per_chunk: int, size: int, r: int):
    appear = int(rng.integers(1, num_chunks)) * per_chunk  # never in the first chunk
    total = num_chunks * per_chunk
    shapes = [_Shape("red", "circle", appear, total, _xy(rng, size, r))]
    for _ in range(int(rng.integers(0, 3))):  # distractors come and go
        colour, shape = _distractor(rng)
        start = int(rng.integers(0, total - 1))
        shapes.append(_Shape(colour, shape, start, int(rng.integers(start + 1, total + 1)), _xy(rng, size, r)))

    def fields(fps):
        return {"task": "open_qa", "answer": "red circle"}

    shapes.append(shapes.pop(0))  # drawn last: no distractor hides the circle the question is about
    return shapes, "Tell me when the red circle appears.", [(appear, "red circle")], fields


def _narration(rng: np.random.Generator, num_chunks: int, per_chunk: int, size: int, r: int):
    shapes, events, chunk = [], [], 0
    while chunk < num_chunks - 1:
        length = int(rng.integers(1, 3))
        end = min(chunk + length, num_chunks)
        colour, shape = _pick(rng, list(COLOURS)), _pick(rng, SHAPES)
        shapes.append(_Shape(colour, shape, chunk * per_chunk, end * per_chunk, _xy(rng, size, r)))
        events.append((end * per_chunk, f"{colour} {shape}"))
        chunk = end + int(rng.integers(0, 2))
    spans = [(s.first, s.stop, f"{s.colour} {s.shape}") for s in shapes]

    def fields(fps):
        return {"task": "dense_caption", "events": [Event(a / fps, b / fps, c) for a, b, c in spans]}

    total = num_chunks * per_chunk
    events = [(min(f, total - 1), c) for f, c in events]  # an event ending with the clip is due at its last frame
    return shapes, "Describe each shape when it disappears.", events, fields


def _magqa(rng: np.random.Generator, num_chunks: int, per_chunk: int, size: int, r: int):
    n_answers = int(rng.integers(2, 4))
    starts = sorted(rng.choice(np.arange(1, num_chunks), size=n_answers - 1, replace=False).tolist())
    bounds = [0, *starts, num_chunks]
    colours = [_pick(rng, list(COLOURS))]
    while len(colours) < n_answers:
        colours.append(_pick(rng, [c for c in COLOURS if c != colours[-1]]))
    xy = _xy(rng, size, r)
    spans = zip(colours, bounds[:-1], bounds[1:], strict=True)
    shapes = [_Shape(c, "circle", a * per_chunk, b * per_chunk, xy) for c, a, b in spans]
    events = [(a * per_chunk, c) for c, a in zip(colours, bounds[:-1], strict=True)]

    def fields(fps):
        return {"task": "open_qa", "answer": colours[-1]}

    return shapes, "What colour is the circle? Answer each time it changes.", events, fields


_KIND = {"alert": _alert, "narration": _narration, "magqa": _magqa}


def _render(shapes: list[_Shape], total: int, size: int, r: int) -> np.ndarray:
    """Frames with `shapes` drawn in order (a later shape covers an earlier one)."""
    frames = np.full((total, size, size, 3), BACKGROUND, dtype=np.uint8)
    yy, xx = np.mgrid[-r:r, -r:r]
    masks = {"circle": (yy**2 + xx**2) < r * r, "square": np.ones((2 * r, 2 * r), dtype=bool)}
    for s in shapes:
        x, y = s.xy
        region = frames[s.first:s.stop, y - r:y + r, x - r:x + r]
        region[:, masks[s.shape]] = COLOURS[s.colour]
    return frames


def _xy(rng: np.random.Generator, size: int, r: int) -> tuple[int, int]:
    return int(rng.integers(r, size - r)), int(rng.integers(r, size - r))


def _distractor(rng: np.random.Generator) -> tuple[str, str]:
    """Any shape but red: the alert must key on the red circle, not on change in general."""
    return _pick(rng, [c for c in COLOURS if c != "red"]), _pick(rng, SHAPES)


def _pick(rng: np.random.Generator, items):
    return items[int(rng.integers(0, len(items)))]
