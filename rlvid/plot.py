"""`rlvid plot RUN_DIR`: PNG curves from RUN_DIR/metrics.jsonl and RUN_DIR/sft/metrics.jsonl (matplotlib, Agg).

Per stage (sft, grpo, mdpo ...): one PNG per metric family, and `<stage>_overview.png` with every family
as a panel. Families: rewards; evaluation, one panel per task (and one for eval rewards), with the step-0
baseline (`trainer.eval_on_start`) drawn as a dashed line; loss; gradient norm; KL; clipping; what the
rollouts look like (truncated and zero-advantage fractions; completion length); learning rate; phase
times (the few slowest top-level phases, the rest summed as `other`). Labels drop the family's common
prefix so legends stay short. A step logged twice (a resumed run) keeps its last value.
"""

from __future__ import annotations

import json
import logging
import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rlvid.safe_paths import safe_component

logger = logging.getLogger("rlvid.plot")

Series = dict[int, float]
TOP_PHASES = 4  # phase-time lines drawn; the other top-level phases are summed


@dataclass
class Panel:
    """One axis: a title, its series {label: {step: value}} and what the y axis shows."""

    name: str
    title: str
    series: dict[str, Series]
    ylabel: str = ""
    baseline: bool = False  # draw each series' step-0 value as a dashed line


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


def read_run(run_dir: str | Path) -> dict[str, dict[str, dict[int, float]]]:
    """Every stage of a run folder: its own metrics.jsonl and the SFT warm start's (RUN_DIR/sft/)."""
    run_dir = Path(run_dir)
    stages: dict[str, dict[str, dict[int, float]]] = {}
    for folder in (run_dir / "sft", run_dir):
        if (folder / "metrics.jsonl").is_file():
            for stage, metrics in read_metrics(folder).items():
                stages.setdefault(stage, {}).update(metrics)
    if not stages:
        raise FileNotFoundError(f"{run_dir}: no metrics.jsonl there (or in {run_dir / 'sft'}); is it a run folder?")
    return stages


def _pick(metrics: dict[str, Series], wanted: Callable[[str], bool], strip: str = "") -> dict[str, Series]:
    return {k.removeprefix(strip): v for k, v in sorted(metrics.items()) if wanted(k) and v}


def phase_series(metrics: dict[str, Series], top: int = TOP_PHASES) -> dict[str, Series]:
    """The `top` slowest top-level phases (`time/<phase>`, not `time/step` or sub-phases) and `other`."""
    phases = {k.removeprefix("time/"): v for k, v in metrics.items()
              if k.startswith("time/") and k.count("/") == 1 and k not in ("time/step", "time/eval")}
    ranked = sorted(phases, key=lambda p: -sum(phases[p].values()))
    out = {p: phases[p] for p in ranked[:top]}
    rest = ranked[top:]
    if rest:
        steps = sorted({s for p in rest for s in phases[p]})
        out[f"other ({len(rest)})"] = {s: sum(phases[p].get(s, 0.0) for p in rest) for s in steps}
    if "time/eval" in metrics:
        out["eval"] = metrics["time/eval"]
    return out


def panels(metrics: dict[str, Series]) -> list[Panel]:
    """The families of one stage that have data, in reading order."""
    def family(name, title, series, ylabel="", baseline=False):
        return [Panel(name, title, series, ylabel, baseline)] if series else []

    out = family("rewards", "rewards (train rollouts)", _pick(metrics, lambda k: k.startswith("rewards/"), "rewards/"))
    tasks = sorted({k.split("/")[1] for k in metrics if k.startswith("eval/") and k.count("/") >= 2})
    for task in tasks:
        prefix = f"eval/{task}/"
        out += family(f"eval_{task}", f"eval: {task}",
                      _pick(metrics, lambda k, p=prefix: k.startswith(p) and not k.endswith("/count"), prefix),
                      baseline=True)
    out += family("eval_other", "eval: other",
                  _pick(metrics, lambda k: k.startswith("eval/") and k.count("/") == 1, "eval/"), baseline=True)
    out += family("loss", "loss", _pick(metrics, lambda k: k in ("loss", "nll")))
    out += family("token_accuracy", "token accuracy (SFT targets)", _pick(metrics, lambda k: k == "token_accuracy"))
    out += family("grad_norm", "gradient norm (before clipping)", _pick(metrics, lambda k: k == "grad_norm"))
    out += family("kl", "KL", _pick(metrics, lambda k: "kl" in k and not k.startswith(("eval/", "time/"))))
    out += family("clipping", "clipping / importance ratio",
                  _pick(metrics, lambda k: k.startswith(("clip_fraction", "ratio_"))))
    out += family("rollouts", "rollouts: fractions",
                  _pick(metrics, lambda k: k in ("rollout/truncated_fraction", "adv/zero_fraction")), "fraction")
    out += family("length", "completion length (tokens)",
                  _pick(metrics, lambda k: k == "rollout/completion_length", "rollout/"), "tokens")
    out += family("lr", "learning rate", _pick(metrics, lambda k: k == "lr"))
    out += family("phase_times", "phase times per step", phase_series(metrics), "seconds")
    return out


def draw(ax, panel: Panel) -> None:
    """Lines (dots when there are few points), the step-0 baselines, a short legend below the axis."""
    from matplotlib.ticker import MaxNLocator

    for label, values in panel.series.items():
        steps = sorted(values)
        line, = ax.plot(steps, [values[s] for s in steps], marker="." if len(steps) < 30 else None, label=label)
        if panel.baseline and 0 in values and len(steps) > 1:
            ax.axhline(values[0], color=line.get_color(), linestyle="--", linewidth=0.8, alpha=0.7)
    ax.set_title(panel.title + (" (dashed: step 0)" if panel.baseline and _has_step0(panel) else ""), fontsize=10)
    ax.set_xlabel("step", fontsize=8)
    if panel.ylabel:
        ax.set_ylabel(panel.ylabel, fontsize=8)
    ax.tick_params(labelsize=7)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    if len(panel.series) > 1 or next(iter(panel.series)) != panel.name:
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=min(len(panel.series), 4),
                  frameon=False)


def _has_step0(panel: Panel) -> bool:
    return any(0 in v and len(v) > 1 for v in panel.series.values())


def plot_run(run_dir: str | Path, out: str | Path | None = None) -> list[Path]:
    """Write `<stage>_<family>.png` per family with data and `<stage>_overview.png`; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    out_dir = Path(out) if out else run_dir / "plots"
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for stage, metrics in read_run(run_dir).items():
        found = panels(metrics)
        if not found:
            continue
        for panel in found:
            fig, ax = plt.subplots(figsize=(7, 4.2))
            draw(ax, panel)
            fig.suptitle(stage, fontsize=9, x=0.02, ha="left")
            written.append(_save(fig, out_dir / f"{safe_component(f'{stage}_{panel.name}')}.png"))
            plt.close(fig)
        cols = min(3, len(found))
        rows = math.ceil(len(found) / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.9 * rows), squeeze=False)
        for ax, panel in zip(axes.flat, found, strict=False):
            draw(ax, panel)
        for ax in list(axes.flat)[len(found):]:
            ax.set_visible(False)
        fig.suptitle(f"{stage}: {run_dir}", fontsize=11)
        fig.tight_layout(rect=(0, 0, 1, 0.97))  # room for the title above the first row
        written.append(_save(fig, out_dir / f"{safe_component(f'{stage}_overview')}.png", layout=False))
        plt.close(fig)
    return written


def _save(fig, path: Path, layout: bool = True) -> Path:
    if layout:
        fig.tight_layout()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return path
