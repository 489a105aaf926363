"""Evaluation metrics as a few readable lines: one row per task (or reward set), its sample count first.

`eval/temporal_grounding/mIoU`, `eval/temporal_grounding/count`, `eval/rewards/total` ... become

    eval at step 40 (12.3 s)
      temporal_grounding  n=20  R1@0.3 0.450  R1@0.5 0.250  R1@0.7 0.100  mIoU 0.312
      rewards             total 0.610  format 0.950  temporal_iou 0.270

used by the training loop when its hooks run and by `rlvid eval`.
"""

from __future__ import annotations

from collections import defaultdict

SECONDS_KEYS = ("time/eval", "eval/seconds", "seconds")


def group_metrics(metrics: dict[str, float]) -> dict[str, dict[str, float]]:
    """{row: {name: value}} from `[eval/]row/name` keys; keys with one part go to row `other`."""
    rows: dict[str, dict[str, float]] = defaultdict(dict)
    for key, value in metrics.items():
        if key in SECONDS_KEYS or key.startswith("time/"):
            continue
        name = key.removeprefix("eval/")
        row, _, metric = name.rpartition("/")
        rows[row or "other"][metric] = value
    return dict(rows)


def format_eval_table(metrics: dict[str, float], title: str = "eval") -> str:
    """The block above: a title (with the evaluation time when `metrics` has one) and one line per row."""
    seconds = next((metrics[k] for k in SECONDS_KEYS if k in metrics), None)
    head = f"{title} ({seconds:.1f} s)" if seconds is not None else title
    rows = group_metrics(metrics)
    if not rows:
        return f"{head}: no metrics"
    width = max(len(r) for r in rows)
    lines = [head]
    for row in sorted(rows, key=lambda r: (r in ("rewards", "other"), r)):
        values = dict(rows[row])
        count = values.pop("count", None)
        cells = [f"n={count:.0f}"] if count is not None else []
        cells += [f"{k} {_number(v)}" for k, v in values.items()]
        lines.append(f"  {row:<{width}}  " + "  ".join(cells))
    return "\n".join(lines)


def _number(value: float) -> str:
    return f"{value:.3f}" if abs(value) < 1000 else f"{value:.0f}"
