"""A visible training signal: warnings when a run cannot learn, eval tables, the end-of-run summary, quiet logs."""

from __future__ import annotations

import json
import logging

import pytest

from rlvid.eval.table import format_eval_table
from rlvid.trainers import console
from rlvid.trainers.signal_checks import SignalMonitor
from rlvid.trainers.summary import format_summary

HEALTHY = {"adv/zero_fraction": 0.25, "rollout/truncated_fraction": 0.05, "rollout/completion_length": 40.0,
           "clip_fraction": 0.02, "approx_kl": 0.01, "kl_mean": 0.02}


def test_a_healthy_run_stays_quiet():
    monitor = SignalMonitor()
    for step in range(1, 30):
        assert monitor.check(dict(HEALTHY, **{"rewards/total": 0.1 * (step % 4)}), step) == []


@pytest.mark.parametrize("bad, needle", [
    ({"adv/zero_fraction": 1.0}, "zero reward variance"),
    ({"rollout/truncated_fraction": 0.9}, "90% of completions were truncated"),
    ({"approx_kl": 5.0}, "approx_kl=5"),
    ({"kl_mean": 3.0}, "kl_mean=3"),
    ({"clip_fraction": 0.6}, "clip_fraction=0.60"),
])
def test_each_problem_is_named(bad, needle):
    messages = SignalMonitor().check(dict(HEALTHY, **bad), 7)
    assert len(messages) == 1 and needle in messages[0] and messages[0].startswith("step 7:")


def test_constant_reward_needs_a_window_of_identical_steps():
    monitor = SignalMonitor()
    found = [monitor.check(dict(HEALTHY, **{"rewards/total": 0.5}), step) for step in range(1, 6)]
    assert found[:4] == [[], [], [], []]
    assert "exactly 0.500 for the last 5 logged steps" in found[4][0]


def test_warnings_are_rate_limited_and_count_what_they_held_back():
    monitor = SignalMonitor(every=10)
    dead = dict(HEALTHY, **{"adv/zero_fraction": 1.0})
    said = {step: monitor.check(dead, step) for step in range(1, 25)}
    assert [s for s, m in said.items() if m] == [1, 11, 21]
    assert "seen in 10 steps since step 1" in said[11][0]


def test_eval_table_has_one_row_per_task_and_rewards_last():
    table = format_eval_table({"eval/temporal_grounding/mIoU": 0.3125, "eval/temporal_grounding/count": 20.0,
                               "eval/mcq/accuracy": 0.5, "eval/mcq/count": 4.0, "eval/rewards/total": 0.61,
                               "time/eval": 12.34}, "grpo eval at step 40")
    lines = table.splitlines()
    assert lines[0] == "grpo eval at step 40 (12.3 s)"
    assert lines[1].split() == ["mcq", "n=4", "accuracy", "0.500"]
    assert lines[2].split() == ["temporal_grounding", "n=20", "mIoU", "0.312"]
    assert lines[3].split() == ["rewards", "total", "0.610"]


def test_summary_reports_first_best_last_eval_and_the_final_folder(tmp_path):
    rows = [{"step": 0, "stage": "grpo", "eval/temporal_grounding/mIoU": 0.1, "eval/temporal_grounding/count": 2},
            {"step": 1, "stage": "grpo", "loss": 0.5},
            {"step": 5, "stage": "grpo", "eval/temporal_grounding/mIoU": 0.4},
            {"step": 10, "stage": "grpo", "eval/temporal_grounding/mIoU": 0.3},
            {"step": 10, "stage": "sft", "eval/temporal_grounding/mIoU": 0.9}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + "{torn")
    text = format_summary(tmp_path, "grpo", 10, 125.0, tmp_path / "final")
    assert text.splitlines()[0] == f"grpo: 10 steps in 2m05s; run folder {tmp_path}"
    row = next(line for line in text.splitlines() if "mIoU" in line).split()
    assert row[1:] == ["0.100", "0.400", "(5)", "0.300"]
    assert "count" not in text and f"final model: {tmp_path / 'final'}" in text
    assert "no evaluation ran" in format_summary(tmp_path, "mdpo", 1, 1.0, "f")


def test_console_drops_accelerate_chatter_and_keeps_ours(capsys):
    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    try:
        console.configure_console("info")
        logging.getLogger("accelerate.checkpointing").info("Model weights saved in /x/.tmp-step-000002")
        logging.getLogger("accelerate.utils.other").warning("Removed shared tensor {'lm_head.weight'} while saving")
        logging.getLogger("rlvid.trainers").warning("step 3: something to see")
        logging.getLogger("rlvid.trainers").info("resumed from here")
        err = capsys.readouterr().err
        assert ".tmp-step" not in err and "Removed shared tensor" not in err
        assert "rlvid.trainers WARNING step 3: something to see" in err and "resumed from here" in err
        console.configure_console("debug")
        logging.getLogger("accelerate.checkpointing").info("Model weights saved in /x/.tmp-step-000004")
        assert ".tmp-step-000004" in capsys.readouterr().err
        with pytest.raises(ValueError, match="trainer.log_level must be one of"):
            console.configure_console("loud")
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
        for h in before[0]:
            root.addHandler(h)
        root.setLevel(before[1])
        for name in console.QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.NOTSET)


def test_log_completions_writes_a_wandb_table_and_jsonl(tmp_path, monkeypatch):
    from tiny_setup import make_tiny_setup, write_recipe

    from rlvid.app.train import run_train

    monkeypatch.setenv("WANDB_MODE", "offline")
    setup = make_tiny_setup(tmp_path)
    recipe = write_recipe(tmp_path / "r.yaml", setup, tmp_path / "run", {
        "trainer": {"max_steps": 2, "log_completions": 3}, "logging": {"wandb": "offline"}})
    run_train(str(recipe))
    rows = [json.loads(line) for line in open(tmp_path / "run" / "completions.jsonl")]
    assert [r["step"] for r in rows] == [1, 1, 1, 2, 2, 2]
    assert all(isinstance(r["completion"], str) and "reward" in r and "advantage" in r and r["sample_id"]
               for r in rows)
    tables = list((tmp_path / "run" / "wandb").rglob("completions_*.table.json"))
    assert len(tables) == 2
    table = json.loads(tables[0].read_text())
    assert table["columns"][:2] == ["step", "sample_id"] and len(table["data"]) == 3
