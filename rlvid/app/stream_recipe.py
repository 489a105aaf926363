"""Streaming recipes (recipes/grpo_streaming.yaml): rewards, `streaming` settings, synthetic `data`, `output_dir`.

A streaming recipe is told apart from an ordinary one by its top-level `streaming:` section
(`is_streaming_recipe`); `rlvid train` and `rlvid eval` then run the streaming commands
(rlvid/app/streaming.py) on the tiny streaming LM instead of the VL policy. Unknown keys and
wrong types are errors that name the file and the key; `section.key=value` overrides apply as in
ordinary recipes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from rlvid.data.synthetic_streaming import STREAM_KINDS
from rlvid.trainers.streaming_grpo import CREDITS
from rlvid.trainers.streaming_sft import SFT_TIMES


@dataclass
class StreamingSettings:
    stream_chunk_seconds: float = 1.0
    num_generations: int = 8
    streams_per_step: int = 8
    lr: float = 1e-3
    temperature: float = 1.0
    max_response_tokens: int = 3
    steps: int = 60
    sft_steps: int = 30
    sft_lr: float = 3e-3
    sft_times: str = "random"  # when the warm start's targets speak: random | end (never the due time)
    credit: str = "decision"
    adv_scale: str = "group"
    seed: int = 0


@dataclass
class StreamingData:
    kinds: list[str] = field(default_factory=lambda: ["alert"])
    chunks: int = 8
    train: int = 64
    held_out: int = 48
    seed: int = 0  # training streams; held-out streams use seed + 1000


@dataclass
class StreamRecipe:
    rewards: list[Any]
    streaming: StreamingSettings
    data: StreamingData
    output_dir: str = "runs/grpo_streaming"
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("source")
        return out


SECTIONS = {"streaming": StreamingSettings, "data": StreamingData}


def is_streaming_recipe(path: str | Path) -> bool:
    """True when the YAML file at `path` has a top-level `streaming:` section (False when it cannot be read:
    the ordinary recipe loader then reports why)."""
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(data, dict) and "streaming" in data


def load_stream_recipe(path: str | Path, overrides: list[str] | None = None) -> StreamRecipe:
    """Read and check a streaming recipe; `overrides` are `section.key=value` (or `output_dir=...`)."""
    raw = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: a streaming recipe is a mapping")
    unknown = set(raw) - {"rewards", "output_dir", *SECTIONS}
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {sorted(unknown)}; allowed: rewards, output_dir, streaming, data")
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"override {item!r}: expected key=value")
        *parents, leaf = key.split(".")
        node = raw
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = yaml.safe_load(value)
    sections = {name: _section(path, name, cls, raw.get(name) or {}) for name, cls in SECTIONS.items()}
    recipe = StreamRecipe(raw.get("rewards") or [], sections["streaming"], sections["data"],
                          str(raw.get("output_dir", StreamRecipe.output_dir)), str(path))
    _check(recipe)
    return recipe


def _section(path, name: str, cls, values: dict) -> Any:
    allowed = {f.name: f for f in fields(cls)}
    if not isinstance(values, dict):
        raise ValueError(f"{path}: '{name}' must be a mapping")
    out = {}
    for key, value in values.items():
        if key not in allowed:
            raise ValueError(f"{path}: unknown key '{name}.{key}'; allowed: {sorted(allowed)}")
        default = getattr(cls(), key)
        if isinstance(default, float) and isinstance(value, (int, str)) and not isinstance(value, bool):
            value = _float_or_same(value)  # YAML reads 1e-3 (no dot) as a string
        if type(value) is not type(default):
            raise ValueError(f"{path}: '{name}.{key}' must be {type(default).__name__}, got {value!r}")
        out[key] = value
    return cls(**out)


def _float_or_same(value: Any) -> Any:
    try:
        return float(value)
    except ValueError:
        return value


def _check(recipe: StreamRecipe) -> None:
    s, d, where = recipe.streaming, recipe.data, recipe.source
    choices = {"streaming.credit": (s.credit, CREDITS), "streaming.sft_times": (s.sft_times, SFT_TIMES),
               "streaming.adv_scale": (s.adv_scale, ("group", "batch", "none"))}
    for key, (value, allowed) in choices.items():
        if value not in allowed:
            raise ValueError(f"{where}: '{key}' must be one of {list(allowed)}, got {value!r}")
    bad = [k for k in d.kinds if k not in STREAM_KINDS]
    if bad or not d.kinds:
        raise ValueError(f"{where}: 'data.kinds' must name some of {list(STREAM_KINDS)}, got {d.kinds}")
    for key in ("num_generations", "streams_per_step", "max_response_tokens"):
        if getattr(s, key) < 1:
            raise ValueError(f"{where}: 'streaming.{key}' must be >= 1")
    if not recipe.rewards:
        raise ValueError(f"{where}: 'rewards' is empty (e.g. [{{name: stream_timing}}])")
