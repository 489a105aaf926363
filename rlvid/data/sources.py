"""What `data.train` / `data.val` / `data.test` may name: one source or a list, each a JSONL file or a dataset.

    data:
      train: clips.jsonl                                  # one file
      train: my_hf_folder@validation                      # a datasets folder or Hub name, split after '@'
      train:                                              # a weighted mix of several sources
        - {path: a.jsonl, weight: 2}                      # each of a's samples drawn twice as often as b's
        - b.jsonl
        - {path: org/dataset@train, column_map: {query: question}}

Without '@' a dataset's split is the recipe key's name (train / val / test); `val` also finds a split
named `validation`, `valid` or `dev`. Relative paths resolve against `base_dir` (the caller's folder,
the working folder when None). docs/data.md documents the rules.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlvid.config.recipe_paths import DATA_SPLIT
from rlvid.data.loaders import DataError

SPLIT_ALIASES = {"val": ("validation", "valid", "dev"), "test": ("testing",)}
ENTRY_KEYS = ("path", "weight", "column_map")


@dataclass(frozen=True)
class DataSource:
    """One entry of a data split: where (`path`), which split (None = the recipe key's), its draw weight
    per sample, and dataset column renames."""

    path: str
    split: str | None = None
    weight: float = 1.0
    column_map: Mapping[str, str] = field(default_factory=dict)

    def splits_to_try(self, key_split: str) -> list[str]:
        """The explicit split, else the recipe key's name and its common aliases."""
        if self.split is not None:
            return [self.split]
        return [key_split, *SPLIT_ALIASES.get(key_split, ())]

    def resolved(self, base_dir: str | os.PathLike | None) -> str:
        """The path made absolute against `base_dir` when it is relative and exists there (a Hub name stays)."""
        if base_dir is None or os.path.isabs(self.path):
            return self.path
        candidate = Path(base_dir) / self.path
        return str(candidate) if candidate.exists() or self.path.endswith(".jsonl") else self.path


def split_spec(spec: str) -> tuple[str, str | None]:
    """`"folder@validation"` -> ("folder", "validation"); a spec without '@split' -> (spec, None)."""
    match = DATA_SPLIT.fullmatch(spec)
    if match and not os.path.exists(spec):
        return match["path"], match["split"]
    return spec, None


def parse_sources(value: Any, key: str, column_map: Mapping[str, str] | None = None) -> list[DataSource]:
    """`data.<split>`'s value as sources; DataError naming `key` (e.g. `data.train[1].weight`) when malformed.

    `column_map` (the recipe's `data.column_map`) applies to every entry that gives none of its own.
    """
    if value is None or value == "":
        return []
    entries = value if isinstance(value, list | tuple) else [value]
    if not entries:
        return []
    sources = []
    for i, entry in enumerate(entries):
        where = f"{key}[{i}]" if isinstance(value, list | tuple) else key
        sources.append(_parse_entry(entry, where, column_map or {}))
    return sources


def _parse_entry(entry: Any, where: str, default_map: Mapping[str, str]) -> DataSource:
    if isinstance(entry, str | os.PathLike):
        path, split = split_spec(os.fspath(entry))
        return DataSource(path, split, 1.0, dict(default_map))
    if not isinstance(entry, Mapping):
        raise DataError(f"{where}: expected a path or {{path, weight, column_map}}, got {entry!r}")
    unknown = sorted(set(entry) - set(ENTRY_KEYS))
    if unknown:
        raise DataError(f"{where}: unknown key(s) {unknown}; allowed: {list(ENTRY_KEYS)}")
    raw_path = entry.get("path")
    if not isinstance(raw_path, str) or not raw_path:
        raise DataError(f"{where}.path: must name a JSONL file or dataset, got {raw_path!r}")
    weight = entry.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 < weight < float("inf"):
        raise DataError(f"{where}.weight: must be a number > 0, got {weight!r}")
    column_map = entry.get("column_map", default_map)
    if not isinstance(column_map, Mapping) or not all(isinstance(k, str) and isinstance(v, str)
                                                      for k, v in column_map.items()):
        raise DataError(f"{where}.column_map: must map dataset column names to Sample field names")
    path, split = split_spec(raw_path)
    return DataSource(path, split, float(weight), dict(column_map))


def mix_weight(sample: Any) -> float:
    """The draw weight of the source a sample was loaded from (1.0 when it came alone or was built in code)."""
    return float(getattr(sample, "_mix_weight", 1.0))


def set_mix_weight(sample: Any, weight: float) -> None:
    """Mark a sample with its source's weight (an attribute, like its load location: not part of the Sample
    schema, so it is never written to files or shown to rewards)."""
    sample._mix_weight = float(weight)
