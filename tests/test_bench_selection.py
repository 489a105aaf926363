"""scripts/bench_selection.py's bookkeeping: job order and needs, the equal-budget read-out, paired statistics."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_selection.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_selection", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_jobs_need_their_pool_and_the_subset_arms_the_selection(bench):
    args = bench.parse_args(["--start", "m", "--out", "o", "--data-seeds", "1", "2", "--seeds", "0", "1"])
    jobs = bench.job_names(args)
    assert len(jobs) == 2 + 2 + 2 * 2 * 4
    assert jobs["grpo-2-1-full"] == ["pool-2"]
    assert jobs["grpo-1-0-random"] == ["pool-1", "select-1"]
    order = list(jobs)
    for name, needs in jobs.items():  # every job comes after what it needs: a one-worker run never waits forever
        assert all(order.index(n) < order.index(name) for n in needs)
    assert "select-1" not in bench.job_names(bench.parse_args(["--start", "m", "--out", "o", "--arms", "full"]))


def test_equal_budget_reads_the_last_eval_that_fits_selection_rollouts_included(bench):
    curve = {"steps": [0, 10, 20, 30], "mIoU": [0.4, 0.5, 0.6, 0.7], "rollouts": [0, 640, 1280, 1920]}
    plain = bench.read_point(curve, extra=0, budget=1920, steps=30)
    assert (plain["steps_mIoU"], plain["budget_mIoU"], plain["budget_step"]) == (0.7, 0.7, 30)
    selected = bench.read_point(curve, extra=1000, budget=1920, steps=30)  # 1000 selection rollouts spent first
    assert (selected["budget_step"], selected["budget_mIoU"], selected["budget_rollouts"]) == (10, 0.5, 1640)
    assert selected["steps_rollouts"] == 2920 and selected["start"] == 0.4
    refilled = {"steps": [0, 10, 20, 30], "mIoU": [0.4, 0.5, 0.6, 0.7], "rollouts": [0, 1000, 2000, 3000]}
    assert bench.read_point(refilled, extra=0, budget=1920, steps=30)["budget_step"] == 10


def test_paired_statistics(bench):
    p = bench.paired([0.1, -0.1, 0.0, 0.2])
    assert p["n"] == 4 and p["mean"] == pytest.approx(0.05)
    assert p["se"] == pytest.approx(0.12909944 / 2)
    assert (p["wins"], p["ties"], p["losses"]) == (2, 1, 1)
    assert math.isnan(bench.paired([0.3])["se"])


def test_slot_hits_read_greedy_answers(bench, tmp_path):
    rows = [{"intervals": [[3.0, 4.0]], "completion": "<answer>3.0 to 4.0</answer>"},
            {"intervals": [[3.0, 4.0]], "completion": "<answer>2.0 to 3.0</answer>"},
            {"intervals": [[7.0, 8.0]], "completion": "no answer"},
            {"intervals": [[1.0, 2.0]], "completion": "<answer>1.0.0 to 2.0</answer>"}]
    path = tmp_path / "step.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert dict(bench.read_slot_hits(path)) == {3: [1.0, 0.0], 7: [0.0], 1: [0.0]}
