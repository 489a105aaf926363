"""Synthetic videos whose answers are in the pixels (DESIGN.md "Testing").

Each clip shows a few coloured shapes on a plain dark background that appear, move and
disappear at known frames, so every label (an interval, an option letter, a colour, a caption)
follows from what is drawn. Tests and learning checks run on these clips without downloading
anything, and a reward that goes up on them means the model really looked at the video.

Timing is frame-exact: an object drawn on frames [a, b) is visible over [a/fps, b/fps) seconds,
and that is the interval written to the annotations.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cache
from pathlib import Path
from typing import Any

import av
import numpy as np

from rlvid.data.loaders import write_jsonl
from rlvid.data.sample import OPTION_LETTERS, Event, Sample

PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 190, 70),
    "blue": (50, 90, 235),
    "yellow": (240, 215, 40),
}
SHAPES = ("circle", "square", "triangle")
DIRECTIONS = ("left", "right", "up", "down")
BACKGROUND = (24, 24, 24)
SYNTHETIC_TASKS = ("temporal_grounding", "mcq", "grounded_qa", "dense_caption")
# Tasks made on request only (not in the default mix). `flash_grounding` writes temporal-grounding samples whose
# answer only the pixels give: see `_flash_grounding`.
EXTRA_TASKS = ("flash_grounding",)
# The Sample.task each generator's samples carry (default: its own name).
SAMPLE_TASK = {"flash_grounding": "temporal_grounding"}
# Frames the vision encoders of Qwen2.5-VL and Qwen3-VL fold into one temporal patch: a flash covers whole patches.
FLASH_FRAMES = 2
SPLITS = ("train", "val", "test")
# The shape question needs four options but only three shapes are drawn: this one never appears.
UNDRAWN_SHAPE = "star"
ENCODER_THREADS = 4
DENSE_CAPTION_QUESTION = "Describe the events in the video, each with its start and end time."


@dataclass(frozen=True)
class SceneObject:
    """One shape drawn on frames [first, stop); its top-left corner moves linearly from `begin_xy` to `end_xy`."""

    colour: str
    shape: str
    first: int
    stop: int
    begin_xy: tuple[int, int]
    end_xy: tuple[int, int]
    motion: str = "static"  # or one of DIRECTIONS

    def position(self, frame: int) -> tuple[int, int]:
        span = self.stop - 1 - self.first
        p = (frame - self.first) / span if span > 0 else 0.0
        return (
            round(self.begin_xy[0] + p * (self.end_xy[0] - self.begin_xy[0])),
            round(self.begin_xy[1] + p * (self.end_xy[1] - self.begin_xy[1])),
        )

    def describe(self, fps: float) -> dict[str, Any]:
        return {
            "colour": self.colour,
            "shape": self.shape,
            "motion": self.motion,
            "start": _seconds(self.first, fps),
            "end": _seconds(self.stop, fps),
        }


@dataclass(frozen=True)
class _Layout:
    """Where shapes may go: a grid of cells for static shapes, rows and columns as lanes for moving ones.

    Static shapes each take their own cell, and a moving shape's lane is kept free of static
    shapes, so shapes visible at the same time never overlap.
    """

    width: int
    height: int
    size: int  # shape side in pixels
    cell: int
    cols: int
    rows: int
    x0: int  # grid offset
    y0: int

    @classmethod
    def for_frame(cls, width: int, height: int) -> _Layout:
        size = max(8, int(0.22 * min(width, height)))
        cell = int(size * 1.4)
        cols, rows = width // cell, height // cell
        return cls(width, height, size, cell, cols, rows, (width - cols * cell) // 2, (height - rows * cell) // 2)

    def cells(self) -> list[tuple[int, int]]:
        return [(c, r) for r in range(self.rows) for c in range(self.cols)]

    def static_xy(self, cell: tuple[int, int], rng: np.random.Generator) -> tuple[int, int]:
        slack = self.cell - self.size
        c, r = cell
        return (
            self.x0 + c * self.cell + int(rng.integers(slack + 1)),
            self.y0 + r * self.cell + int(rng.integers(slack + 1)),
        )

    def lane_path(self, direction: str, lane: int) -> tuple[tuple[int, int], tuple[int, int]]:
        """Start and end corner for a shape crossing the frame along row/column `lane`."""
        margin = 2
        centre = (self.cell - self.size) // 2
        if direction in ("left", "right"):
            y = self.y0 + lane * self.cell + centre
            a, b = (margin, y), (self.width - self.size - margin, y)
        else:
            x = self.x0 + lane * self.cell + centre
            a, b = (x, margin), (x, self.height - self.size - margin)
        return (a, b) if direction in ("right", "down") else (b, a)

    def cells_off_lane(self, direction: str, lane: int) -> list[tuple[int, int]]:
        horizontal = direction in ("left", "right")
        return [(c, r) for c, r in self.cells() if (r if horizontal else c) != lane]


@dataclass
class _Scene:
    """What a generator decided: the objects to draw and the sample's labels."""

    objects: list[SceneObject]
    question: str
    options: list[str] | None = None
    answer: str | None = None
    intervals: list[tuple[float, float]] | None = None
    events: list[Event] | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def make_synthetic_data(
    out_dir: str | Path,
    n: int = 100,
    seed: int = 0,
    *,
    duration: float | tuple[float, float] = (6.0, 10.0),
    fps: float = 8,
    width: int = 128,
    height: int = 96,
    splits: tuple[float, float, float] = (0.8, 0.1, 0.1),
    tasks: Sequence[str] = SYNTHETIC_TASKS,
    crf: int = 18,
    preset: str = "veryfast",
    noise: float = 0.0,
) -> Path:
    """Write `n` clips to `out_dir/videos/` and `train/val/test.jsonl` next to them; return `out_dir`.

    Same arguments give identical annotations and identical video bytes. `duration` is fixed or a
    (low, high) range drawn per clip; split sizes are floor(n * fraction) for val and test and the
    rest for train; within each split the tasks take turns, so every split is balanced.

    Large clips for benchmarks work the same way (duration=30, fps=30, width=1280, height=720).
    Flat colour compresses to almost nothing (~0.03 Mbit/s), which makes decoding unrealistically
    cheap; `noise` adds Gaussian grain of that pixel standard deviation to reach a camera-like
    bitrate (at 720p30, crf 18: noise=4 gives ~10 Mbit/s, noise=8 ~30 Mbit/s). Keep it 0 for
    clips whose labels are checked from the pixels.
    """
    _check_args(n, fps, width, height, splits, tasks, duration)
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    out = Path(out_dir)
    (out / "videos").mkdir(parents=True, exist_ok=True)
    layout = _Layout.for_frame(width, height)
    counts = _split_sizes(n, splits)
    index = 0
    for split in SPLITS:
        samples = []
        for j in range(counts[split]):
            rng = np.random.default_rng([seed, index])
            task = tasks[j % len(tasks)]
            sample_id = f"{split}-{j:05d}"
            samples.append(
                _make_sample(out, sample_id, task, rng, layout, _draw_duration(rng, duration), fps, crf, preset, noise)
            )
            index += 1
        write_jsonl(samples, out / f"{split}.jsonl")
    info = {
        "generator": "rlvid.data.synthetic.make_synthetic_data",
        "args": {
            "n": n, "seed": seed, "duration": duration, "fps": fps, "width": width, "height": height,
            "splits": list(splits), "tasks": list(tasks), "crf": crf, "preset": preset, "noise": noise,
        },
        "counts": counts,
        "palette": PALETTE,
        "shapes": list(SHAPES),
        "shape_size_px": layout.size,
    }
    (out / "dataset_info.json").write_text(json.dumps(info, indent=2) + "\n")
    return out


def encode_mp4(
    path: str | Path, frames: Iterable[np.ndarray], fps: float, *, crf: int = 18, preset: str = "veryfast"
) -> Path:
    """Encode RGB uint8 frames (H, W, 3; even H and W) as H.264/yuv420p MP4; frame i gets timestamp i/fps."""
    path = Path(path)
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), "w") as container:
        stream = None
        for frame in frames:
            if stream is None:
                height, width = frame.shape[:2]
                # A fixed thread count: x264's output depends on it, and "auto" differs between machines.
                options = {"crf": str(crf), "preset": preset, "threads": str(ENCODER_THREADS)}
                stream = container.add_stream(
                    "libx264", rate=rate, width=width, height=height, pix_fmt="yuv420p", options=options
                )
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        if stream is None:
            raise ValueError(f"{path}: no frames to encode")
        container.mux(stream.encode())
    return path


# --- one sample -------------------------------------------------------------------------------------------


def _make_sample(
    out: Path,
    sample_id: str,
    task: str,
    rng: np.random.Generator,
    layout: _Layout,
    duration: float,
    fps: float,
    crf: int,
    preset: str,
    noise: float,
) -> Sample:
    n_frames = max(4, round(duration * fps))
    scene = _GENERATORS[task](rng, layout, n_frames, fps)
    frames = (_render(scene.objects, i, layout) for i in range(n_frames))
    if noise > 0:
        frames = _with_grain(frames, rng, noise)
    video = Path("videos") / f"{sample_id}.mp4"
    encode_mp4(out / video, frames, fps, crf=crf, preset=preset)
    meta = {"generator": "rlvid.synthetic", **scene.meta, "objects": [o.describe(fps) for o in scene.objects]}
    return Sample(
        id=sample_id,
        video=video.as_posix(),
        duration=_seconds(n_frames, fps),
        task=SAMPLE_TASK.get(task, task),
        question=scene.question,
        options=scene.options,
        answer=scene.answer,
        intervals=scene.intervals,
        events=scene.events,
        meta=meta,
    )


def _render(objects: list[SceneObject], frame: int, layout: _Layout) -> np.ndarray:
    image = np.empty((layout.height, layout.width, 3), dtype=np.uint8)
    image[:] = BACKGROUND
    for obj in objects:
        if obj.shape == "screen" and obj.first <= frame < obj.stop:  # the whole frame takes the colour
            image[:] = PALETTE[obj.colour]
        elif obj.first <= frame < obj.stop:
            x, y = obj.position(frame)
            mask = _mask(obj.shape, layout.size)
            image[y : y + layout.size, x : x + layout.size][mask] = PALETTE[obj.colour]
    return image


def _with_grain(frames: Iterable[np.ndarray], rng: np.random.Generator, std: float) -> Iterator[np.ndarray]:
    """Add Gaussian grain, cycling through four precomputed noise fields to stay fast on large frames."""
    fields: list[np.ndarray] = []
    for i, frame in enumerate(frames):
        if len(fields) < 4:
            fields.append(rng.normal(0.0, std, frame.shape).astype(np.int16))
        yield np.clip(frame + fields[i % 4], 0, 255).astype(np.uint8)


@cache
def _mask(shape: str, size: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    if shape == "square":
        return np.ones((size, size), dtype=bool)
    if shape == "circle":
        r = size / 2
        return (xx - r) ** 2 + (yy - r) ** 2 <= r * r
    if shape == "triangle":  # apex up, base along the bottom row
        return np.abs(xx - size / 2) <= yy / 2
    raise ValueError(f"unknown shape {shape!r}; known: {list(SHAPES)}")


# --- task generators: each returns the objects to draw and the labels they imply --------------------------


def _temporal_grounding(rng: np.random.Generator, layout: _Layout, n_frames: int, fps: float) -> _Scene:
    colours = _shuffled(rng, PALETTE)
    colour, shape = colours[0], _pick(rng, SHAPES)
    cells = _shuffled(rng, layout.cells())
    a, b = _span(rng, n_frames, max(_min_span(n_frames, fps), n_frames // 6), n_frames // 2)
    objects = [_still(colour, shape, a, b, layout.static_xy(cells[0], rng))]
    # Distractors have other colours, so the target colour is on screen exactly over [a, b).
    for k in range(int(rng.integers(1, 3))):
        c, d = _span(rng, n_frames, _min_span(n_frames, fps), n_frames // 2)
        objects.append(_still(colours[k + 1], _pick(rng, SHAPES), c, d, layout.static_xy(cells[k + 1], rng)))
    return _Scene(
        objects,
        question=f"When is the {colour} {shape} visible in the video?",
        intervals=[(_seconds(a, fps), _seconds(b, fps))],
        meta={"colour": colour, "shape": shape},
    )


def _mcq(rng: np.random.Generator, layout: _Layout, n_frames: int, fps: float) -> _Scene:
    kind = _pick(rng, ("colour", "shape", "direction", "count"))
    if kind == "count":
        k = int(rng.integers(1, 5))
        cells = _shuffled(rng, layout.cells())
        objects = []
        for i in range(k):
            a, b = _span(rng, n_frames, _min_span(n_frames, fps), n_frames)
            objects.append(_still(_pick(rng, list(PALETTE)), _pick(rng, SHAPES), a, b, layout.static_xy(cells[i], rng)))
        options, correct = ["1", "2", "3", "4"], str(k)
        question = "How many shapes appear in the video?"
        meta: dict[str, Any] = {"question_type": "count", "count": k}
    else:
        colours = _shuffled(rng, PALETTE)
        shapes = _shuffled(rng, SHAPES)
        colour, shape = colours[0], shapes[0]
        if kind == "direction":
            target, free_cells = _mover(rng, layout, n_frames, fps, colour, shape)
        else:
            free_cells = _shuffled(rng, layout.cells())
            a, b = _span(rng, n_frames, max(_min_span(n_frames, fps), n_frames // 4), n_frames)
            target = _still(colour, shape, a, b, layout.static_xy(free_cells.pop(), rng))
        objects = [target]
        # One static distractor with another colour and another shape, so "the <shape>" / "the <colour> object"
        # names the target alone.
        a, b = _span(rng, n_frames, _min_span(n_frames, fps), n_frames)
        objects.append(_still(colours[1], shapes[1], a, b, layout.static_xy(free_cells[0], rng)))
        if kind == "colour":
            question, correct = f"What colour is the {shape}?", colour
            options = _shuffled(rng, PALETTE)
        elif kind == "shape":
            question, correct = f"What shape is the {colour} object?", shape
            options = _shuffled(rng, [*SHAPES, UNDRAWN_SHAPE])
        else:
            question, correct = f"In which direction does the {colour} {shape} move?", target.motion
            options = _shuffled(rng, DIRECTIONS)
        meta = {"question_type": kind, "colour": colour, "shape": shape}
    meta["answer_text"] = correct
    return _Scene(objects, question, options=options, answer=OPTION_LETTERS[options.index(correct)], meta=meta)


def _grounded_qa(rng: np.random.Generator, layout: _Layout, n_frames: int, fps: float) -> _Scene:
    colours = _shuffled(rng, PALETTE)
    colour, shape = colours[0], _pick(rng, SHAPES)
    target, free_cells = _mover(rng, layout, n_frames, fps, colour, shape)
    objects = [target]
    for k in range(int(rng.integers(1, 3))):  # static distractors in other colours
        a, b = _span(rng, n_frames, _min_span(n_frames, fps), n_frames)
        objects.append(_still(colours[k + 1], _pick(rng, SHAPES), a, b, layout.static_xy(free_cells[k], rng)))
    if rng.random() < 0.5:
        question, answer, kind = f"What colour is the shape that moves {target.motion}?", colour, "colour"
    else:
        question, answer, kind = f"What shape moves {target.motion}?", shape, "shape"
    return _Scene(
        objects,
        question,
        answer=answer,
        intervals=[(_seconds(target.first, fps), _seconds(target.stop, fps))],
        meta={"question_type": kind, "colour": colour, "shape": shape, "direction": target.motion},
    )


def _dense_caption(rng: np.random.Generator, layout: _Layout, n_frames: int, fps: float) -> _Scene:
    min_len = _min_span(n_frames, fps)
    k = min(int(rng.integers(2, 5)), max(1, n_frames // min_len))
    # Split the frames into k event spans (each >= min_len) and k+1 gaps: events are sorted and disjoint.
    extra = rng.multinomial(n_frames - k * min_len, rng.dirichlet(np.ones(2 * k + 1)))
    objects, events, t = [], [], 0
    for i in range(k):
        t += int(extra[2 * i])
        a, b = t, t + min_len + int(extra[2 * i + 1])
        t = b
        colour, shape = _pick(rng, list(PALETTE)), _pick(rng, SHAPES)
        if rng.random() < 0.5:
            obj, _ = _mover(rng, layout, n_frames, fps, colour, shape, span=(a, b))
            caption = f"a {colour} {shape} moves {obj.motion}"
        else:
            obj = _still(colour, shape, a, b, layout.static_xy(_pick(rng, layout.cells()), rng))
            caption = f"a {colour} {shape} appears"
        objects.append(obj)
        events.append(Event(_seconds(a, fps), _seconds(b, fps), caption))
    return _Scene(objects, DENSE_CAPTION_QUESTION, events=events, meta={"num_events": k})


def _flash_grounding(rng: np.random.Generator, layout: _Layout, n_frames: int, fps: float) -> _Scene:
    """The whole screen turns one colour for FLASH_FRAMES frames, starting on a temporal-patch boundary.

    Only the pixels say when: the flash is equally likely in every patch-aligned slot, so a constant answer
    scores about FLASH_FRAMES / n_frames mean IoU (the best constant is measured by scripts/bench_learning.py),
    while the signal (every pixel of two frames) is as large as a video can make it.
    """
    slots = n_frames // FLASH_FRAMES
    if slots < 2:
        raise ValueError(f"flash_grounding needs at least {2 * FLASH_FRAMES} frames, got {n_frames}")
    colour = _pick(rng, list(PALETTE))
    a = FLASH_FRAMES * int(rng.integers(slots))
    objects = [SceneObject(colour, "screen", a, a + FLASH_FRAMES, (0, 0), (0, 0))]
    return _Scene(
        objects,
        question=f"When does the screen turn {colour}?",
        intervals=[(_seconds(a, fps), _seconds(a + FLASH_FRAMES, fps))],
        meta={"colour": colour, "shape": "screen"},
    )


_GENERATORS = {
    "flash_grounding": _flash_grounding,
    "temporal_grounding": _temporal_grounding,
    "mcq": _mcq,
    "grounded_qa": _grounded_qa,
    "dense_caption": _dense_caption,
}


# --- small helpers ----------------------------------------------------------------------------------------


def _mover(
    rng: np.random.Generator,
    layout: _Layout,
    n_frames: int,
    fps: float,
    colour: str,
    shape: str,
    span: tuple[int, int] | None = None,
) -> tuple[SceneObject, list[tuple[int, int]]]:
    """A shape crossing the frame in a random direction; also the shuffled cells off its lane (free for others)."""
    direction = _pick(rng, DIRECTIONS)
    lane = int(rng.integers(layout.rows if direction in ("left", "right") else layout.cols))
    a, b = span or _span(rng, n_frames, max(_min_span(n_frames, fps), n_frames // 4), n_frames * 2 // 3)
    begin, end = layout.lane_path(direction, lane)
    free_cells = _shuffled(rng, layout.cells_off_lane(direction, lane))
    return SceneObject(colour, shape, a, b, begin, end, direction), free_cells


def _still(colour: str, shape: str, first: int, stop: int, xy: tuple[int, int]) -> SceneObject:
    return SceneObject(colour, shape, first, stop, xy, xy)


def _span(rng: np.random.Generator, n_frames: int, min_len: int, max_len: int) -> tuple[int, int]:
    """Frames [a, b) with min_len <= b - a <= max_len inside [0, n_frames)."""
    max_len = max(min_len, min(max_len, n_frames))
    length = int(rng.integers(min_len, max_len + 1))
    a = int(rng.integers(0, n_frames - length + 1))
    return a, a + length


def _min_span(n_frames: int, fps: float) -> int:
    """About one second, but at least 2 frames and at most a quarter of the clip."""
    return max(2, min(round(fps), n_frames // 4))


def _pick(rng: np.random.Generator, items: Sequence[Any]) -> Any:
    return items[int(rng.integers(len(items)))]


def _shuffled(rng: np.random.Generator, items: Iterable[Any]) -> list[Any]:
    items = list(items)
    return [items[i] for i in rng.permutation(len(items))]


def _seconds(frame: int, fps: float) -> float:
    return round(frame / fps, 4)


def _draw_duration(rng: np.random.Generator, duration: float | tuple[float, float]) -> float:
    if isinstance(duration, (int, float)):
        return float(duration)
    low, high = duration
    return float(rng.uniform(low, high))


def _split_sizes(n: int, splits: tuple[float, float, float]) -> dict[str, int]:
    n_val, n_test = int(n * splits[1]), int(n * splits[2])
    return {"train": n - n_val - n_test, "val": n_val, "test": n_test}


def _check_args(
    n: int,
    fps: float,
    width: int,
    height: int,
    splits: tuple[float, float, float],
    tasks: Sequence[str],
    duration: float | tuple[float, float],
) -> None:
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    if width % 2 or height % 2:
        raise ValueError(f"width and height must be even for yuv420p H.264, got {width}x{height}")
    layout = _Layout.for_frame(width, height)
    if layout.cols < 2 or layout.rows < 2:
        raise ValueError(f"{width}x{height} is too small: need room for a 2x2 grid of shapes (try 64x48 or more)")
    if len(splits) != 3 or any(s < 0 for s in splits) or abs(sum(splits) - 1.0) > 1e-6:
        raise ValueError(f"splits must be three non-negative fractions (train, val, test) summing to 1, got {splits}")
    if isinstance(tasks, str) or not tasks:
        raise ValueError(f"tasks must be a non-empty list drawn from {list(SYNTHETIC_TASKS + EXTRA_TASKS)}, "
                         f"got {tasks!r}")
    unknown = [t for t in tasks if t not in SYNTHETIC_TASKS + EXTRA_TASKS]
    if unknown:
        raise ValueError(f"unknown synthetic task(s) {unknown}; allowed: {list(SYNTHETIC_TASKS + EXTRA_TASKS)}")
    low, high = (duration, duration) if isinstance(duration, (int, float)) else duration
    if not 0 < low <= high:
        raise ValueError(f"duration must be > 0 (a number or a (low, high) range), got {duration!r}")

