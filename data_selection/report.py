"""What a selection did: a per-task table (counts, reward mean/variance, pass and parse rates, before and
after) and a PNG of the reward mean and variance histograms before and after."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from data_selection.stats import SampleStats

COLUMNS = ("mean", "variance", "pass_rate", "parse_rate")


def summarize(stats: Sequence[SampleStats], kept_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """{task or "all": {"before": n, "after": n, "<stat>_before": avg, "<stat>_after": avg}} (avg None when empty)."""
    kept = set(kept_ids)
    tasks = sorted({s.task for s in stats})
    out = {}
    for task in [*tasks, "all"]:
        before = [s for s in stats if task in ("all", s.task)]
        after = [s for s in before if s.id in kept]
        row: dict[str, Any] = {"before": len(before), "after": len(after)}
        for col in COLUMNS:
            row[f"{col}_before"] = _avg(getattr(s, col) for s in before)
            row[f"{col}_after"] = _avg(getattr(s, col) for s in after)
        out[task] = row
    return out


def format_summary(summary: dict[str, dict[str, Any]], title: str = "") -> str:
    """The summary as a fixed-width text table (averages over samples, before -> after)."""
    width = max([len("task"), *(len(t) for t in summary)])
    head = f"{'task':<{width}}  {'before':>6}  {'after':>6}" + "".join(f"  {c + ' (avg)':>20}" for c in COLUMNS)
    lines = [title] if title else []
    lines += [head, "-" * len(head)]
    for task, row in summary.items():
        cells = "".join(f"  {_num(row[f'{c}_before'])} -> {_num(row[f'{c}_after'])}" for c in COLUMNS)
        lines.append(f"{task:<{width}}  {row['before']:>6}  {row['after']:>6}{cells}")
    return "\n".join(lines)


def kept_line(stats: Sequence[SampleStats], kept_ids: Sequence[str], strategy: str) -> str:
    """One sentence on what was kept and why the rest went: samples whose k rewards were all equal give
    GRPO no signal, so their count is what a user most needs to see."""
    kept = set(kept_ids)
    flat = [s for s in stats if s.variance <= 1e-12]
    flat_kept = sum(s.id in kept for s in flat)
    line = (f"kept {len(kept)} of {len(stats)} samples ({strategy}); {len(flat)} had equal rewards in all rollouts "
            f"(no GRPO signal), {flat_kept} of them kept")
    if stats and len(kept) == len(stats):
        line += "; every sample was kept: choose a strategy (data_selection/README.md) to select"
    return line


def plot_histograms(stats: Sequence[SampleStats], kept_ids: Sequence[str], path: str | Path,
                    title: str = "") -> Path:
    """Histograms of per-sample reward mean and variance, all samples vs the selected ones (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kept = set(kept_ids)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, col in zip(axes, ("mean", "variance"), strict=True):
        before = [getattr(s, col) for s in stats]
        after = [getattr(s, col) for s in stats if s.id in kept]
        low, high = (min(before), max(before)) if before else (0.0, 1.0)
        bins = [low + (high - low or 1.0) * i / 20 for i in range(21)]
        ax.hist([before, after], bins=bins, label=[f"all ({len(before)})", f"selected ({len(after)})"])
        ax.set_xlabel(f"reward {col} per sample")
        ax.set_ylabel("samples")
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _avg(values) -> float | None:
    values = list(values)
    return math.fsum(values) / len(values) if values else None


def _num(x: float | None) -> str:
    return f"{'-':>8}" if x is None else f"{x:>8.4f}"
