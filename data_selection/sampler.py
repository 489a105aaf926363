"""Weighted sampling of a selected dataset: the weights `variance_weights` (or any strategy) wrote, times the
weights of a `data.train` mix (`[{path: a.jsonl, weight: 2}, b.jsonl]`).

`rlvid select` stores each kept sample's weight in `meta["selection"]["weight"]`. The trainer
(`selection.weighted_sampling`, on by default) draws its data order with torch's
`WeightedRandomSampler`, seeded from (seed, epoch) like its uniform order, so a resumed run sees
the same batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import WeightedRandomSampler

from data_selection.stats import META_KEY
from rlvid.data.sample import Sample
from rlvid.data.sources import mix_weight


def sample_weights(samples: Sequence[Sample]) -> list[float]:
    """Each sample's selection weight (1.0 for a sample without one) times its source's weight in a
    `data.train` mix (rlvid.data.sources)."""
    return [float(((getattr(s, "meta", None) or {}).get(META_KEY) or {}).get("weight", 1.0)) * mix_weight(s)
            for s in samples]


def selection_weights(samples: Sequence[Any]) -> list[float] | None:
    """The samples' draw weights (selection x source mix), or None when none carries one or all are equal
    (uniform order then).

    Zero weights are allowed (never drawn); all zero is refused, as there would be nothing to draw.
    """
    if not any((isinstance(getattr(s, "meta", None), dict) and META_KEY in s.meta) or mix_weight(s) != 1.0
               for s in samples):
        return None
    weights = sample_weights(samples)
    if sum(weights) <= 0:
        raise ValueError("selection weights (meta.selection.weight) of the train samples are all 0")
    return None if len(set(weights)) == 1 else weights


def weighted_sampler(weights: Sequence[float], seed: int, epoch: int = 0, num_samples: int | None = None,
                     replacement: bool = True) -> WeightedRandomSampler:
    """Indices drawn with probability proportional to `weights` (`num_samples` of them, default all),
    reproducible from (seed, epoch)."""
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return WeightedRandomSampler(list(weights), num_samples or len(weights), replacement=replacement,
                                 generator=generator)


def weighted_order(samples: Sequence[Sample], seed: int, epoch: int = 0) -> list[int]:
    """One epoch's data order (len(samples) draws with replacement) by the samples' selection weights."""
    return list(weighted_sampler(sample_weights(samples), seed, epoch))
