"""`rlvid plot RUN_DIR`: PNG curves from RUN_DIR/metrics.jsonl (matplotlib, Agg backend).

One figure per group: rewards (total and each sub-reward), KL, clipping, loss/grad norm,
evaluation metrics, per-phase times. A step logged twice (a resumed run) keeps its last value.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from pathlib import Path

from rlvid.safe_paths import safe_component

logger = logging.getLogger("rlvid.plot")

GROUPS = {
    "rewards": lambda k: k.startswith("rewards/"),
    "kl": lambda k: "kl" in k and not k.startswith("eval/"),
    "clipping": lambda k: k.startswith("clip_fraction") or k.startswith("ratio_"),
    "loss": lambda k: k in ("loss", "grad_norm", "token_accuracy"),
    "eval": lambda k: k.startswith("eval/") and not k.endswith("/count"),
    "phase_times": lambda k: k.startswith("time/"),
}


def read_metrics(run_dir: str | Path) -> dict[str, dict[str, dict[int, float]]]:
    """{stage: {metric: {step: value}}} from metrics.jsonl (numbers only). A row that is not a JSON object
    with a step (a line torn by a full disk) is skipped with a warning naming its file and line."""
    out: dict[str, dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    path = Path(run_dir) / "metrics.jsonl"
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            stage, step = rec.pop("stage", "train"), int(rec.pop("step"))
        except (json.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError) as e:
            logger.warning("%s:%d: bad row skipped (%s): %.80s", path, number, type(e).__name__, line)
            continue
        for k, v in rec.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out[stage][k][step] = float(v)
    return out


def plot_run(run_dir: str | Path, out: str | Path | None = None) -> list[Path]:
    """Write one PNG per (stage, group) with data; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    out_dir = Path(out) if out else run_dir / "plots"
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for stage, metrics in read_metrics(run_dir).items():
        for group, wanted in GROUPS.items():
            keys = sorted(k for k in metrics if wanted(k))
            if not keys:
                continue
            fig, ax = plt.subplots(figsize=(7, 4))
            for k in keys:
                steps = sorted(metrics[k])
                ax.plot(steps, [metrics[k][s] for s in steps], marker="." if len(steps) < 30 else None, label=k)
            ax.set_xlabel("step")
            ax.set_title(f"{stage}: {group}")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, loc="best")
            path = out_dir / f"{safe_component(f'{stage}_{group}')}.png"  # stage names come from metrics.jsonl
            fig.tight_layout()
            fig.savefig(path, dpi=100)
            plt.close(fig)
            written.append(path)
    return written
