"""`rlvid select` end to end on the tiny model and synthetic videos: stats, selected dataset, report, resume."""

from __future__ import annotations

import contextlib
import io
import json
import statistics

import pytest
from tiny_setup import make_tiny_setup, write_recipe

from data_selection.collect import ResumeMismatchError
from data_selection.sampler import sample_weights
from data_selection.stats import read_stats
from rlvid.app.select import select_from_recipe
from rlvid.cli import main
from rlvid.data.loaders import load_jsonl
from rlvid.rollout.hf import HFRolloutEngine

LENGTH_REWARD = "def length(completions, **kw):\n    return [len(c) / 10 for c in completions]\n"
IDS = [f"train-{i:05d}" for i in range(6)]


class Killed(Exception):
    """Stands in for a kill right after the first batch was written."""


@contextlib.contextmanager
def counting_generate():
    """Record the sample ids of every engine.generate call."""
    calls: list[list[str]] = []
    original = HFRolloutEngine.generate

    def generate(self, batch, num_generations, sampling):
        calls.append([s.id for s in batch])
        return original(self, batch, num_generations, sampling)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(HFRolloutEngine, "generate", generate)
        yield calls


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    root = tmp_path_factory.mktemp("select")
    setup = make_tiny_setup(root)
    (root / "length.py").write_text(LENGTH_REWARD)  # varies with the completion: nonzero variance
    return write_recipe(root / "select.yaml", setup, root / "run", {
        "data": {"max_samples": 6},
        "rewards": {"functions": [{"name": "./length.py:length"},
                                  {"name": "format", "weight": 0.5, "kwargs": {"think": "optional"}}]},
        "selection": {"offline": {"strategy": "top_variance", "kwargs": {"fraction": 0.5}, "batch_size": 2}},
    })


@pytest.fixture(scope="module")
def full_run(recipe, tmp_path_factory):
    """One uninterrupted `rlvid select RECIPE --k 4 --out DIR`."""
    out = tmp_path_factory.mktemp("full")
    stdout = io.StringIO()
    with counting_generate() as calls, contextlib.redirect_stdout(stdout):
        assert main(["select", str(recipe), "--k", "4", "--out", str(out)]) == 0
    return {"out": out, "calls": calls, "stdout": stdout.getvalue()}


def test_select_writes_stats_selected_dataset_and_report(full_run):
    out = full_run["out"]
    assert full_run["calls"] == [IDS[0:2], IDS[2:4], IDS[4:6]]  # batches of 2 prompts, one process
    stats = read_stats(out / "stats.jsonl")
    assert read_stats(out / "stats.parquet") == stats
    assert [s.id for s in stats] == IDS
    for s in stats:
        assert s.k == len(s.rewards) == 4
        assert s.mean == pytest.approx(statistics.fmean(s.rewards))
        assert s.variance == pytest.approx(statistics.pvariance(s.rewards))
        assert 0.0 <= s.pass_rate <= 1.0 and s.parse_rate == 0.0  # a random tiny model writes no answer tags
        assert set(s.reward_means) == {"length", "format"}

    # top_variance with fraction 0.5 keeps the 3 highest-variance samples, in data order.
    ranked = sorted(range(6), key=lambda i: -stats[i].variance)[:3]
    expected = [IDS[i] for i in sorted(ranked)]
    selected = load_jsonl(out / "selected.jsonl").samples
    assert [s.id for s in selected] == expected
    by_id = {s.id: s for s in stats}
    for s in selected:
        assert s.meta["selection"]["variance"] == by_id[s.id].variance and s.meta["selection"]["weight"] == 1.0
        assert s.task == "temporal_grounding" and s.intervals  # the sample itself came through intact

    assert (out / "selection_hist.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["strategy"] == "top_variance" and summary["kwargs"] == {"fraction": 0.5}
    assert summary["per_task"]["all"]["before"] == 6 and summary["per_task"]["all"]["after"] == 3
    rows = {line.split()[0]: line.split() for line in full_run["stdout"].splitlines() if line.strip()}
    assert rows["temporal_grounding"][:3] == ["temporal_grounding", "6", "3"]
    assert "kept 3 of 6 samples (top_variance);" in full_run["stdout"]
    assert json.loads((out / "run.json").read_text())["k"] == 4


def test_killed_run_resumes_without_redoing_finished_samples(recipe, full_run, tmp_path):
    def kill_after_first_batch(batch_index, rows):
        raise Killed

    with counting_generate() as calls, pytest.raises(Killed):
        select_from_recipe(recipe, tmp_path, k=4, on_batch=kill_after_first_batch)
    assert calls == [IDS[0:2]]
    shard = tmp_path / "shards" / "rank0.jsonl"
    assert [json.loads(line)["id"] for line in shard.read_text().splitlines()] == IDS[0:2]
    assert not (tmp_path / "stats.jsonl").exists()
    with shard.open("a") as f:
        f.write('{"id": "train-00002", "task": "temp')  # a row cut mid-write by the kill

    with counting_generate() as calls:
        select_from_recipe(recipe, tmp_path, k=4)
    assert calls == [IDS[2:4], IDS[4:6]]  # the finished batch is not generated again
    assert [json.loads(line)["id"] for line in shard.read_text().splitlines()] == IDS
    assert read_stats(tmp_path / "stats.jsonl") == read_stats(full_run["out"] / "stats.jsonl")
    assert (tmp_path / "selected.jsonl").read_text() == (full_run["out"] / "selected.jsonl").read_text()


def test_resuming_with_other_settings_is_an_error(recipe, full_run):
    with counting_generate() as calls, pytest.raises(ResumeMismatchError, match=r"k: 4 -> 3"):
        select_from_recipe(recipe, full_run["out"], k=3)
    assert calls == []


def test_reselect_from_stats_generates_nothing_and_writes_weights(full_run, tmp_path, monkeypatch):
    def no_model(*args, **kwargs):
        raise AssertionError("re-selection must not load a model")

    monkeypatch.setattr("rlvid.models.loading.load_policy", no_model)
    stats = read_stats(full_run["out"] / "stats.parquet")
    assert main(["select", "--from-stats", str(full_run["out"] / "stats.parquet"), "--strategy", "variance_weights",
                 "--out", str(tmp_path)]) == 0
    selected = load_jsonl(tmp_path / "selected.jsonl").samples
    kept = [s for s in stats if s.variance > 0]
    assert [s.id for s in selected] == [s.id for s in kept]
    total = sum(s.variance for s in kept)
    assert sample_weights(selected) == pytest.approx([s.variance * len(kept) / total for s in kept])

    assert main(["select", "--from-stats", str(full_run["out"] / "stats.jsonl"), "--strategy", "top_variance",
                 "--kwarg", "n=1", "--out", str(tmp_path / "one")]) == 0
    (best,) = load_jsonl(tmp_path / "one" / "selected.jsonl").samples
    assert best.id == max(stats, key=lambda s: s.variance).id
