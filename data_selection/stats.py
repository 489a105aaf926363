"""Per-sample statistics of k sampled rollouts: what offline selection decides on.

A sample's rollouts are scored with the recipe's rewards; its row records the totals and their
mean, variance (population, ddof = 0), pass rate and answer parse rate, the mean of each reward
over the rollouts it applies to, and the sample itself, so a stats file alone is enough to
re-select (`rlvid select --from-stats`) without generating again.

Pass rate: the fraction of rollouts whose total reward is >= the pass threshold. The default
threshold is half the maximum attainable total of that rollout: the sum of the positive weights
of the rewards that apply to it (score not None), assuming each reward scores at most 1 — true of
every builtin except `grounded_qa` with sub-score weights above 1. Set an absolute
`pass_threshold` otherwise.

Parse rate: the fraction of completions with a closed `<answer>...</answer>` block from which the
sample's task parser reads an answer (an option letter, a number, an interval, events, or any
non-empty text for open and grounded QA).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from rewards.events import parse_events
from rewards.parsing import extract_tag, parse_interval, parse_number, parse_option
from rlvid.data.atomic import atomic_path
from rlvid.data.sample import Sample
from rlvid.redact import scrub

META_KEY = "selection"  # selected samples carry meta["selection"] = {weight, mean, variance, pass_rate}
PASS_FRACTION = 0.5  # default pass threshold = PASS_FRACTION x the maximum attainable total


@dataclass
class SampleStats:
    """Statistics of one sample's k rollouts (one row of a stats file)."""

    id: str
    task: str
    k: int
    rewards: list[float]  # total reward of each rollout, in generation order
    mean: float
    variance: float  # population variance of `rewards` (ddof = 0)
    std: float
    min: float
    max: float
    pass_rate: float  # fraction of rollouts with total >= their pass threshold
    parse_rate: float  # fraction of completions with a parseable <answer> block
    reward_means: dict[str, float | None] = field(default_factory=dict)  # per reward label; None: never applied
    sample: dict[str, Any] | None = None  # the Sample as a dict (Sample.to_dict), for re-selection

    def to_sample(self) -> Sample:
        if self.sample is None:
            raise ValueError(f"stats row {self.id!r} carries no sample; it cannot be written as a dataset")
        return Sample.from_dict(self.sample, where=f"stats row {self.id!r}")


def sample_stats(sample: Sample, totals: Sequence[float], completions: Sequence[str],
                 scores: dict[str, Sequence[float | None]] | None = None, *,
                 thresholds: Sequence[float]) -> SampleStats:
    """The stats of one sample from its rollouts' totals, texts, per-reward scores (label -> values) and
    per-rollout pass thresholds (`pass_thresholds`)."""
    n = len(totals)
    if n == 0 or len(completions) != n:
        raise ValueError(f"sample {sample.id!r}: need as many completions as totals (>= 1), got {len(completions)}/{n}")
    mean = math.fsum(totals) / n
    variance = math.fsum((x - mean) ** 2 for x in totals) / n
    passed = sum(t >= th for t, th in zip(totals, thresholds, strict=True))
    parsed = sum(answer_parsed(c, sample) for c in completions)
    means = {}
    for label, values in (scores or {}).items():
        present = [v for v in values if v is not None]
        means[label] = math.fsum(present) / len(present) if present else None
    return SampleStats(
        id=sample.id, task=sample.task, k=n, rewards=[float(x) for x in totals], mean=mean, variance=variance,
        std=math.sqrt(variance), min=float(min(totals)), max=float(max(totals)), pass_rate=passed / n,
        parse_rate=parsed / n, reward_means=means, sample=sample.to_dict(),
    )


def pass_thresholds(scores: dict[str, Sequence[float | None]], weights: dict[str, float], n: int,
                    pass_threshold: float | None = None) -> list[float]:
    """Per-rollout pass thresholds: `pass_threshold` when given, else PASS_FRACTION x the maximum attainable
    total (sum of the positive weights of the rewards whose score is not None for that rollout)."""
    if pass_threshold is not None:
        return [float(pass_threshold)] * n
    attainable = [0.0] * n
    for label, weight in weights.items():
        for i, v in enumerate(scores.get(label, [None] * n)):
            if v is not None:
                attainable[i] += max(weight, 0.0)
    return [PASS_FRACTION * a for a in attainable]


def answer_parsed(completion: str, sample: Sample) -> bool:
    """True when the completion has a closed <answer> block the sample's task parser reads an answer from."""
    answer = extract_tag(completion, "answer")
    if not answer:
        return False
    task = sample.task
    if task == "mcq":
        return parse_option(answer, sample.options) is not None
    if task == "numeric":
        return parse_number(answer) is not None
    if task == "temporal_grounding":
        return parse_interval(answer, sample.duration) is not None
    if task == "dense_caption":
        return bool(parse_events(answer, sample.duration))
    return True  # open_qa, grounded_qa: any non-empty answer text


# ---------------------------------------------------------------- files

SCALARS = ("id", "task", "k", "mean", "variance", "std", "min", "max", "pass_rate", "parse_rate")


def stats_to_json(s: SampleStats) -> str:
    """One stats line, secret values redacted (`rlvid.redact`)."""
    return json.dumps(scrub(asdict(s)), ensure_ascii=False)


def stats_from_dict(raw: dict[str, Any]) -> SampleStats:
    known = {f.name for f in fields(SampleStats)}
    return SampleStats(**{k: v for k, v in raw.items() if k in known})


def write_stats(stats: Iterable[SampleStats], out_dir: str | os.PathLike, stem: str = "stats") -> tuple[Path, Path]:
    """Write `stem.jsonl` and `stem.parquet` (rewards as a list column, each reward's mean as `mean/<label>`,
    the sample as a JSON string); returns both paths."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stats = list(stats)
    jsonl = out / f"{stem}.jsonl"
    with atomic_path(jsonl) as tmp, tmp.open("w", encoding="utf-8") as f:
        for s in stats:
            f.write(stats_to_json(s) + "\n")
    columns: dict[str, list] = {k: [getattr(s, k) for s in stats] for k in SCALARS}
    columns["rewards"] = [s.rewards for s in stats]
    labels = list(dict.fromkeys(label for s in stats for label in s.reward_means))
    for label in labels:
        columns[f"mean/{label}"] = [s.reward_means.get(label) for s in stats]
    columns["sample"] = [json.dumps(scrub(s.sample), ensure_ascii=False) if s.sample is not None else None
                         for s in stats]
    parquet = out / f"{stem}.parquet"
    table = pa.table({k: pa.array(v, type=pa.float64()) if k.startswith("mean/") else v for k, v in columns.items()})
    with atomic_path(parquet) as tmp:
        pq.write_table(table, tmp)
    return jsonl, parquet


def read_stats(path: str | os.PathLike) -> list[SampleStats]:
    """Rows of a stats file written by `write_stats` (.jsonl or .parquet)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: stats file not found")
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        out = []
        for row in pq.read_table(path).to_pylist():
            means = {k[5:]: row.pop(k) for k in list(row) if k.startswith("mean/")}
            sample = row.pop("sample", None)
            out.append(stats_from_dict({**row, "reward_means": means,
                                        "sample": json.loads(sample) if sample else None}))
        return out
    out = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if line.strip():
                try:
                    out.append(stats_from_dict(json.loads(line)))
                except (json.JSONDecodeError, TypeError) as e:
                    raise ValueError(f"{path}:{lineno}: not a stats row: {e}") from e
    return out
