"""Run k sampled rollouts per training sample and record each sample's stats: batched, sharded, resumable.

The loop is `rlvid.rollout.collect` (shared with M-DPO pair building): process r of W takes samples
r, r+W, ... (accelerate's `PartialState` gives the ranks, so `torchrun` / `accelerate launch` just
work), each batch is seeded from `seed` and its ids, and a sample's k rollouts are generated and
scored on one process. Each process appends the stats rows of a finished batch to
`OUT/shards/rank{r}.jsonl` (flushed); on start every process reads all shard files and skips the
samples already there, so a killed run continues where it stopped and a resumed run produces the
same stats as an uninterrupted one (same seed, batch size and number of processes).
`OUT/run.json` records the settings that make stats comparable (k, model, rewards, sampling, pass
threshold, the sample ids); resuming with different ones is a `ResumeMismatchError`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from accelerate import PartialState

from data_selection.stats import SampleStats, pass_thresholds, sample_stats, stats_from_dict, stats_to_json
from rewards import score
from rlvid.data.sample import Sample
from rlvid.rollout import RolloutEngine, SamplingParams
from rlvid.rollout.collect import (
    ResumeMismatchError,
    append_lines,
    check_settings,
    check_sizes,
    drop_torn_tail,
    my_share,
    sample_batches,
)

logger = logging.getLogger("data_selection")

__all__ = ["ResumeMismatchError", "collect_stats", "process_state", "read_shards", "score_rollouts"]

SHARDS_DIR = "shards"
RUN_FILE = "run.json"

BatchHook = Callable[[int, list[SampleStats]], None]


def collect_stats(
    samples: Sequence[Sample],
    engine: RolloutEngine,
    reward_set,
    sampling: SamplingParams,
    out_dir: str | os.PathLike,
    *,
    k: int,
    batch_size: int,
    seed: int,
    pass_threshold: float | None = None,
    settings: dict[str, Any] | None = None,
    state: PartialState | None = None,
    on_batch: BatchHook | None = None,
) -> list[SampleStats]:
    """Stats of every sample (in `samples` order), generating only those no shard file holds yet.

    `reward_set` is a `rewards.RewardSet`; `settings` (JSON-able) are checked against OUT/run.json;
    `on_batch(batch_index, rows)` runs after each batch is flushed (progress, tests).
    """
    check_sizes(k, batch_size)
    state = state or process_state()
    out = Path(out_dir)
    shards = out / SHARDS_DIR
    ids = [s.id for s in samples]
    if len(set(ids)) != len(ids):
        raise ValueError("sample ids must be unique to record and resume per-sample stats")
    check_settings(out, {**(settings or {}), "k": k, "pass_threshold": pass_threshold,
                         "ids_crc32": zlib.crc32("\n".join(ids).encode())}, state, RUN_FILE)
    done = read_shards(shards)
    if done:
        logger.info("resuming: %d of %d samples already have stats", sum(i in done for i in ids), len(ids))
    shard = shards / f"rank{state.process_index}.jsonl"
    drop_torn_tail(shard)
    share = len(my_share(samples, state))

    def finish(index: int, batch: list[Sample], rollouts) -> None:
        rows = score_rollouts(batch, rollouts, reward_set, pass_threshold)
        append_lines(shard, [stats_to_json(r) for r in rows])
        logger.info("process %d: %d of %d samples done", state.process_index,
                    min((index + 1) * batch_size, share), share)
        if on_batch is not None:
            on_batch(index, rows)

    sample_batches(samples, engine, sampling, k=k, batch_size=batch_size, seed=seed, state=state, done=set(done),
                   finish=finish)
    state.wait_for_everyone()
    found = read_shards(shards)
    missing = [i for i in ids if i not in found]
    if missing:
        raise RuntimeError(f"{len(missing)} sample(s) have no stats after the run (first: {missing[:3]})")
    return [found[i] for i in ids]


def process_state() -> PartialState:
    """This process's rank and device; cpu=True on a CPU-only machine is what makes accelerate read
    torchrun's ranks there (MULTI_CPU over gloo), as the trainers' Accelerator does."""
    import torch

    return PartialState(cpu=not torch.cuda.is_available())


def score_rollouts(batch: Sequence[Sample], rollouts, reward_set,
                   pass_threshold: float | None = None) -> list[SampleStats]:
    """Score a batch's rollouts (rows grouped by `rollouts.prompt_index`) and summarise each sample."""
    rows_of: dict[int, list[int]] = {}
    for row, p in enumerate(rollouts.prompt_index):
        rows_of.setdefault(p, []).append(row)
    out = score(reward_set, [batch[p] for p in rollouts.prompt_index], rollouts.texts, rollouts.token_ids)
    bad = [batch[p].id for p, r in zip(rollouts.prompt_index, out.total, strict=True) if not math.isfinite(r)]
    if bad:
        raise ValueError(f"non-finite total reward for sample(s) {sorted(set(bad))[:3]}")
    weights = {r.label: r.weight for r in reward_set.rewards}
    thresholds = pass_thresholds(out.scores, weights, len(out.total), pass_threshold)
    stats = []
    for p, sample in enumerate(batch):
        rows = rows_of.get(p, [])
        if not rows:
            raise ValueError(f"the engine returned no rollouts for sample {sample.id!r}")
        stats.append(sample_stats(
            sample, [out.total[r] for r in rows], [rollouts.texts[r] for r in rows],
            {label: [values[r] for r in rows] for label, values in out.scores.items()},
            thresholds=[thresholds[r] for r in rows],
        ))
    return stats


def read_shards(shards_dir: str | os.PathLike) -> dict[str, SampleStats]:
    """Every finished sample's stats in a shards folder (all ranks); a torn last line is ignored."""
    found: dict[str, SampleStats] = {}
    for path in sorted(Path(shards_dir).glob("rank*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = stats_from_dict(json.loads(line))
            except (json.JSONDecodeError, TypeError):
                continue  # a line cut by a kill mid-write: that batch is redone
            found.setdefault(row.id, row)
    return found
