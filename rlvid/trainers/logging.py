"""Where metrics go: output_dir/metrics.jsonl, wandb (offline by default) and a tqdm progress bar.

Only the main process writes; the trainer reduces metrics across processes before `log`.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

from rlvid.config import recipe_to_dict
from rlvid.redact import scrub, scrub_text, secret_values


class RunLogger:
    """One `log(metrics, step)` call per step (and per evaluation)."""

    def __init__(self, recipe, output_dir: str | Path, total_steps: int, start_step: int = 0,
                 is_main: bool = True, stage: str = "grpo", wandb_id: str | None = None):
        """`wandb_id` (kept in the run folder's run.json) makes a resumed run log into the same wandb run."""
        self.output_dir = Path(output_dir)
        self.is_main = is_main
        self.stage = stage
        self.secret_env = list(recipe.logging.secret_env)
        self.jsonl = None
        self.wandb_run = None
        self.bar = None
        self.start_time = time.perf_counter()
        if not is_main:
            return
        self.output_dir.mkdir(parents=True, exist_ok=True)
        cfg = recipe.logging
        if cfg.metrics_jsonl:
            self.jsonl = open(self.output_dir / "metrics.jsonl", "a")
        if cfg.wandb != "disabled":
            import wandb

            os.environ.setdefault("WANDB_SILENT", "true")
            values = secret_values(self.secret_env)
            project, name = (scrub_text(n, values, marker="redacted-{name}")  # wandb refuses ':' and '<' in names
                             for n in (cfg.project, cfg.run_name or f"{self.output_dir.name}-{stage}"))
            self.wandb_run = wandb.init(
                project=project, name=name, mode=cfg.wandb,
                dir=str(self.output_dir), config=recipe_to_dict(recipe), reinit="finish_previous",
                **({"id": wandb_id, "resume": "allow"} if wandb_id else {}),
            )
        if recipe.trainer.progress_bar:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total_steps, initial=start_step, desc=stage, dynamic_ncols=True)

    def log(self, metrics: dict[str, Any], step: int, advance: bool = True) -> None:
        if not self.is_main:
            return
        clean = scrub({k: _plain(v) for k, v in metrics.items()}, self.secret_env)
        if self.jsonl is not None:
            self.jsonl.write(json.dumps({"step": step, "stage": self.stage, **clean}) + "\n")
            self.jsonl.flush()
        if self.wandb_run is not None:
            self.wandb_run.log({f"{self.stage}/{k}" if self.stage == "sft" else k: v for k, v in clean.items()},
                               step=step)
        if self.bar is not None and advance:
            postfix = {}
            if "time/step" in clean:
                postfix["step_s"] = f"{clean['time/step']:.2f}"
            for key in ("rewards/total", "loss"):
                if key in clean:
                    postfix[key.split("/")[0]] = f"{clean[key]:.3f}"
            for key, short in (("rollout/truncated_fraction", "trunc"), ("adv/zero_fraction", "zero_adv")):
                if key in clean:  # a run that cannot learn shows it here too (1.00 = every completion/group)
                    postfix[short] = f"{clean[key]:.2f}"
            self.bar.set_postfix(postfix, refresh=False)
            self.bar.update(1)

    def log_completions(self, rows: list[dict[str, Any]], step: int) -> None:
        """Sample completions (`trainer.log_completions`): a wandb table `completions` and completions.jsonl lines."""
        if not self.is_main or not rows:
            return
        rows = [scrub(dict(row, step=step), self.secret_env) for row in rows]
        with open(self.output_dir / "completions.jsonl", "a") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
        if self.wandb_run is not None:
            import wandb

            from rlvid.trainers.completion_table import COLUMNS

            table = wandb.Table(columns=list(COLUMNS), data=[[row.get(c) for c in COLUMNS] for row in rows])
            self.wandb_run.log({"completions": table}, step=step)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.jsonl is not None:
            self.jsonl.close()
        if self.wandb_run is not None:
            self.wandb_run.finish()
            self.wandb_run = None


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value
