"""Scoring completions of samples: the reward columns come from the `Sample` schema itself.

Every caller that scores rollouts (GRPO, evaluation hooks, M-DPO pair building, data selection)
goes through `score`, so a field added to `Sample` reaches every reward as a column.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from rewards.combine import RewardOutput, RewardSet
from rlvid.data.sample import Sample

SAMPLE_COLUMNS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Sample))


def sample_columns(samples: Sequence[Any]) -> dict[str, list]:
    """Each Sample field as a list aligned with `samples` (the rewards' keyword columns)."""
    return {k: [getattr(s, k) for s in samples] for k in SAMPLE_COLUMNS}


def score(reward_set: RewardSet, samples: Sequence[Any], texts: list[str],
          completion_ids: list[list[int]] | None = None) -> RewardOutput:
    """`reward_set` on completions `texts[i]` of `samples[i]` (and their token ids, column `completion_ids`)."""
    columns = sample_columns(samples)
    if completion_ids is not None:
        columns["completion_ids"] = completion_ids
    return reward_set(texts, **columns)
