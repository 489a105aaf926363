"""A dataset object as `Sample`s: a list of Samples or dicts, or a Hugging Face `datasets.Dataset`.

Rows follow the sample schema (rlvid/data/sample.py). A column the schema does not have (TRL's `solution`,
say) is moved under `meta`, and rewards receive it back as a column of that name, as TRL passes a dataset's
columns. A relative video path is taken from the working folder (a JSONL file's are from its own folder).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from rlvid.data.sample import Sample, SampleError

FIELDS = frozenset(f.name for f in dataclasses.fields(Sample))


def row_to_sample(row: Mapping[str, Any], where: str) -> Sample:
    """One row as a Sample; unknown columns go under `meta` (a None there is dropped, as a missing value)."""
    known = {k: v for k, v in row.items() if k in FIELDS}
    extra = {k: v for k, v in row.items() if k not in FIELDS and v is not None}
    if extra:
        known["meta"] = {**extra, **(known.get("meta") or {})}
    return Sample.from_dict(known, where=where)


def to_samples(data: Any, name: str = "train_dataset") -> list[Sample]:
    """`data` as a list of Samples; errors name `name[index]` and the field."""
    if isinstance(data, (str, bytes)) or not isinstance(data, Iterable):
        raise TypeError(f"{name}: expected a list of Samples or dicts, a datasets.Dataset or a file path, "
                        f"got {type(data).__name__}")
    samples = []
    for i, row in enumerate(data):
        where = f"{name}[{i}]"
        if isinstance(row, Sample):
            samples.append(row)
        elif isinstance(row, Mapping):
            samples.append(row_to_sample(row, where))
        else:
            raise SampleError(f"{where}: expected a Sample or a dict, got {type(row).__name__}")
    if not samples:
        raise SampleError(f"{name}: the dataset is empty")
    return samples


def filter_samples(samples: list[Sample], tasks: list[str] | None, max_samples: int | None) -> list[Sample]:
    """`data.tasks` and `data.max_samples` of the recipe, applied as to a split read from a file."""
    if tasks:
        samples = [s for s in samples if s.task in tasks]
    return samples if max_samples is None else samples[:max_samples]
