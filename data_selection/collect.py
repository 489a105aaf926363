"""Run k sampled rollouts per training sample and record each sample's stats: batched, sharded, resumable.

Sharding: process r of W takes samples r, r+W, r+2W, ... (accelerate's `PartialState` gives the
ranks, so `torchrun` / `accelerate launch` just work) and cuts its share into fixed batches.
Groups of one sample's k rollouts are never split: a sample is generated and scored on one process.

Resuming: each process appends the stats rows of a finished batch to `OUT/shards/rank{r}.jsonl`
and flushes (fsync) before the next batch. On start every process reads all shard files and skips
the samples already there, so a killed run continues where it stopped and never redoes a finished
sample. Each batch's sampling seed is derived from `seed` and the ids in the batch, so a resumed
run produces the same stats as an uninterrupted one (same seed, batch size and number of
processes). `OUT/run.json` records the settings that make stats comparable (k, model, rewards,
sampling, pass threshold, the sample ids); resuming with different ones is an error.
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
from accelerate.utils import set_seed

from data_selection.stats import SampleStats, pass_thresholds, sample_stats, stats_from_dict, stats_to_json
from rewards import score
from rlvid.data.sample import Sample
from rlvid.rollout import RolloutEngine, SamplingParams

logger = logging.getLogger("data_selection")

SHARDS_DIR = "shards"
RUN_FILE = "run.json"

BatchHook = Callable[[int, list[SampleStats]], None]


class ResumeMismatchError(ValueError):
    """An output folder holds stats made with other settings than this run's."""


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
    if k < 1 or batch_size < 1:
        raise ValueError(f"k and batch_size must be >= 1, got k={k}, batch_size={batch_size}")
    state = state or process_state()
    out = Path(out_dir)
    shards = out / SHARDS_DIR
    ids = [s.id for s in samples]
    if len(set(ids)) != len(ids):
        raise ValueError("sample ids must be unique to record and resume per-sample stats")
    _check_settings(out, {**(settings or {}), "k": k, "pass_threshold": pass_threshold,
                          "ids_crc32": zlib.crc32("\n".join(ids).encode())}, state)
    done = read_shards(shards)
    if done:
        logger.info("resuming: %d of %d samples already have stats", sum(i in done for i in ids), len(ids))
    mine = list(samples)[state.process_index::state.num_processes]
    shard = shards / f"rank{state.process_index}.jsonl"
    _drop_torn_tail(shard)
    with shard.open("a", encoding="utf-8") as f:
        for b in range(0, len(mine), batch_size):
            todo = [s for s in mine[b:b + batch_size] if s.id not in done]
            if not todo:
                continue
            set_seed(batch_seed(seed, [s.id for s in todo]))
            rows = score_rollouts(todo, engine.generate(todo, k, sampling), reward_set, pass_threshold)
            f.write("".join(stats_to_json(r) + "\n" for r in rows))
            f.flush()
            os.fsync(f.fileno())
            logger.info("process %d: %d of %d samples done", state.process_index,
                        min(b + batch_size, len(mine)), len(mine))
            if on_batch is not None:
                on_batch(b // batch_size, rows)
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


def batch_seed(seed: int, ids: Sequence[str]) -> int:
    """A batch's sampling seed: a function of the run seed and the batch's sample ids only."""
    return zlib.crc32("\n".join([str(seed), *ids]).encode())


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


def _drop_torn_tail(path: Path) -> None:
    """Cut a partial last line (a kill mid-write) so appended rows start on a line of their own."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        path.write_bytes(data[: data.rfind(b"\n") + 1])


def _check_settings(out: Path, settings: dict[str, Any], state: PartialState) -> None:
    """Compare with OUT/run.json (written by the main process on the first run)."""
    settings = json.loads(json.dumps(settings))  # the JSON form, as it is stored
    path = out / RUN_FILE
    if path.is_file():
        before = json.loads(path.read_text())
        diff = sorted(k for k in set(before) | set(settings) if before.get(k) != settings.get(k))
        if diff:
            changes = ", ".join(f"{k}: {before.get(k)!r} -> {settings.get(k)!r}" for k in diff)
            raise ResumeMismatchError(f"{out} holds stats made with other settings ({changes}); "
                                      "use the same settings to resume, or another --out")
    state.wait_for_everyone()
    if state.is_main_process and not path.is_file():
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")
    state.wait_for_everyone()
