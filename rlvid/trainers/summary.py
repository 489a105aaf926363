"""The end-of-run summary: steps, time, evaluation metrics (first, best, last) and what to run next.

Read from the run folder's metrics.jsonl, so it describes the whole run, resumed parts included.
"""

from __future__ import annotations

import json
from pathlib import Path

from rlvid.trainers.run_folder import METRICS_FILE

MAX_ROWS = 12  # eval metrics shown; rewards/total and each task's headline metrics come first
HEADLINE = ("rewards/total", "/mIoU", "/accuracy", "/SODA_c", "/CIDEr", "stream/")


def eval_history(output_dir: str | Path, stage: str) -> dict[str, dict[int, float]]:
    """{eval metric: {step: value}} of `stage` from output_dir/metrics.jsonl (counts and times left out)."""
    path = Path(output_dir) / METRICS_FILE
    out: dict[str, dict[int, float]] = {}
    if not path.is_file():
        return out
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(rec, dict) or rec.get("stage", stage) != stage or "step" not in rec:
            continue
        for k, v in rec.items():
            if (k.startswith("eval/") and not k.endswith("/count") and isinstance(v, (int, float))
                    and not isinstance(v, bool)):
                out.setdefault(k, {})[int(rec["step"])] = float(v)
    return out


def headline_rank(key: str) -> tuple[int, str]:
    hits = [i for i, h in enumerate(HEADLINE) if h in key]
    return (hits[0] if hits else len(HEADLINE), key)


def format_summary(output_dir: str | Path, stage: str, steps: int, seconds: float, final: str | Path) -> str:
    """Lines for the terminal: what ran, the eval metrics (first -> best @ step -> last) and the final model."""
    lines = [f"{stage}: {steps} steps in {_duration(seconds)}; run folder {output_dir}"]
    history = eval_history(output_dir, stage)
    keys = sorted(history, key=headline_rank)
    if keys:
        width = min(max(len(k) for k in keys[:MAX_ROWS]), 48)
        lines.append(f"  {'eval metric':<{width}}  {'first':>8}  {'best (step)':>15}  {'last':>8}")
        for key in keys[:MAX_ROWS]:
            by_step = history[key]
            first, last = by_step[min(by_step)], by_step[max(by_step)]
            best_step = max(by_step, key=lambda s: (by_step[s], -s))
            best = f"{by_step[best_step]:.3f} ({best_step})"
            lines.append(f"  {key:<{width}}  {first:>8.3f}  {best:>15}  {last:>8.3f}")
        if len(keys) > MAX_ROWS:
            lines.append(f"  ... {len(keys) - MAX_ROWS} more eval metrics in {Path(output_dir) / METRICS_FILE}")
    else:
        lines.append("  no evaluation ran (add a hook, e.g. hooks: [{name: eval_all}]; "
                     "trainer.eval_on_start adds a step-0 baseline)")
    lines.append(f"  final model: {final}")
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"
