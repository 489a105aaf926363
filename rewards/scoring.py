"""Scoring completions of samples: the reward columns come from the `Sample` schema itself.

Every caller that scores rollouts (GRPO, evaluation hooks, M-DPO pair building, data selection)
goes through `score`, so a field added to `Sample` reaches every reward as a column.

The call is TRL's (`trl.GRPOTrainer._calculate_rewards`): `fn(prompts=, completions=, completion_ids=,
trainer_state=, **dataset_columns)`, so a reward written for TRL runs unchanged. Dataset columns are
the `Sample` fields plus each `meta` key (a TRL column such as `solution` lives under `meta` in the
rlvid schema); `trainer_state` is a `transformers.TrainerState` (`global_step`, `max_steps`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from transformers.trainer_callback import TrainerState

from rewards.combine import RewardOutput, RewardSet
from rlvid.data.prompts import build_prompt
from rlvid.data.sample import Sample

SAMPLE_COLUMNS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Sample))
# Passed by the trainer besides the dataset columns; a `meta` key of one of these names is not a column.
TRAINER_COLUMNS: tuple[str, ...] = ("prompts", "completions", "completion_ids", "trainer_state")


def sample_columns(samples: Sequence[Any]) -> dict[str, list]:
    """Each Sample field as a list aligned with `samples` (the rewards' keyword columns)."""
    return {k: [getattr(s, k) for s in samples] for k in SAMPLE_COLUMNS}


def meta_columns(samples: Sequence[Any]) -> dict[str, list]:
    """Each key found in any sample's `meta` as a column (None where a sample lacks it), as TRL passes a
    dataset's extra columns; keys that name a Sample field or a trainer argument stay under `meta` only."""
    metas = [getattr(s, "meta", None) or {} for s in samples]
    keys = dict.fromkeys(k for m in metas for k in m if isinstance(k, str))
    reserved = set(SAMPLE_COLUMNS) | set(TRAINER_COLUMNS)
    return {k: [m.get(k) for m in metas] for k in keys if k not in reserved and k.isidentifier()}


def reward_state(global_step: int = 0, max_steps: int = 0) -> TrainerState:
    """The `trainer_state` a reward sees (TRL passes its `transformers.TrainerState`)."""
    return TrainerState(global_step=global_step, max_steps=max_steps)


def prompt_texts(samples: Sequence[Any]) -> list[str]:
    """The user prompt of each sample (the default template's text; the video is not part of it)."""
    out = []
    for s in samples:
        try:
            out.append(build_prompt(s))
        except (KeyError, AttributeError, TypeError):  # a task without a template, or a stand-in object
            out.append(getattr(s, "question", ""))
    return out


def score(reward_set: RewardSet, samples: Sequence[Any], texts: list[str],
          completion_ids: list[list[int]] | None = None, *, prompts: list[str] | None = None,
          trainer_state: TrainerState | None = None) -> RewardOutput:
    """`reward_set` on completions `texts[i]` of `samples[i]`, called as TRL calls a reward: `prompts`
    (default: each sample's prompt text), `completion_ids`, `trainer_state` (default: step 0) and the
    dataset columns (`Sample` fields, then `meta` keys)."""
    columns: dict[str, Any] = meta_columns(samples)
    columns.update(sample_columns(samples))
    columns["prompts"] = list(prompts) if prompts is not None else prompt_texts(samples)
    if completion_ids is not None:
        columns["completion_ids"] = completion_ids
    columns["trainer_state"] = trainer_state if trainer_state is not None else reward_state()
    return reward_set(texts, **columns)
