"""`rlvid plot`: the SFT stage too, one panel per family, eval per task with the step-0 baseline, phase times
folded to the top few, rollout health (truncation, zero advantage, length)."""

from __future__ import annotations

import json

from rlvid.plot import panels, phase_series, plot_run, read_run


def _write(folder, rows):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def _grpo_rows():
    rows = []
    for step in range(0, 6):
        row = {"step": step, "stage": "grpo"}
        if step:
            row.update({"rewards/total": 0.1 * step, "rollout/truncated_fraction": 0.5, "adv/zero_fraction": 0.25,
                        "rollout/completion_length": 30.0 + step, "loss": 0.1, "grad_norm": 1.0, "lr": 1e-6,
                        **{f"time/phase{i}": float(i) for i in range(8)}, "time/gen/decode": 9.0,
                        "time/step": 28.0})
        if step % 5 == 0:
            row.update({"eval/temporal_grounding/mIoU": 0.1 + step / 10, "eval/temporal_grounding/count": 4,
                        "eval/mcq/accuracy": 0.5, "eval/rewards/total": 0.3, "time/eval": 2.0})
        rows.append(row)
    return rows


def test_families_split_eval_by_task_and_fold_phase_times(tmp_path):
    _write(tmp_path, _grpo_rows())
    found = {p.name: p for p in panels(read_run(tmp_path)["grpo"])}
    assert list(found) == ["rewards", "eval_mcq", "eval_rewards", "eval_temporal_grounding", "loss", "grad_norm",
                           "rollouts", "length", "lr", "phase_times"]
    assert set(found["eval_temporal_grounding"].series) == {"mIoU"}  # no count, short labels
    assert found["eval_temporal_grounding"].baseline
    assert set(found["rollouts"].series) == {"rollout/truncated_fraction", "adv/zero_fraction"}
    phases = phase_series(read_run(tmp_path)["grpo"])
    assert list(phases) == ["phase7", "phase6", "phase5", "phase4", "other (4)", "eval"]  # no sub-phases, no step
    assert phases["other (4)"][1] == 0.0 + 1 + 2 + 3


def test_plot_includes_the_sft_stage_and_an_overview(tmp_path):
    _write(tmp_path, _grpo_rows())
    _write(tmp_path / "sft", [{"step": s, "stage": "sft", "loss": 2.0 / s, "token_accuracy": 0.1 * s}
                              for s in (1, 2, 3)])
    names = {p.name for p in plot_run(tmp_path)}
    assert {"sft_loss.png", "sft_token_accuracy.png", "sft_overview.png", "grpo_overview.png",
            "grpo_eval_temporal_grounding.png", "grpo_rollouts.png", "grpo_length.png"} <= names
    assert all(p.stat().st_size > 5000 for p in (tmp_path / "plots").iterdir())
