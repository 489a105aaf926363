"""Evaluation hooks: when they run, user hooks by file path, metrics written to the run folder."""

from __future__ import annotations

import json

import pytest
from tiny_setup import make_tiny_setup, write_recipe

from rlvid.app.train import run_sft
from rlvid.config import HookSpec, Recipe
from rlvid.trainers.hooks import HOOKS, HookRunner, resolve_hook


def test_due_follows_eval_steps_every_n_and_epoch_end():
    recipe = Recipe()
    recipe.trainer.eval_steps = 0
    runner = HookRunner([HookSpec(name="eval_grounding"), HookSpec(name="save_samples", every_n_steps=3)], recipe)
    names = lambda hooks: [h.name for h in hooks]  # noqa: E731
    assert names(runner.due(3, epoch_end=False, last=False)) == ["save_samples"]
    assert names(runner.due(4, epoch_end=True, last=False)) == ["eval_grounding"]
    assert names(runner.due(5, epoch_end=False, last=True)) == ["eval_grounding", "save_samples"]
    assert names(runner.due(2, epoch_end=False, last=False)) == []


def test_unknown_hook_names_the_builtins():
    with pytest.raises(LookupError, match="eval_grounding"):
        resolve_hook("eval_grunding")
    assert {"eval_grounding", "eval_mcq", "eval_grounded_qa", "eval_dense_caption", "save_samples"} <= set(
        HOOKS.names())


def test_user_hook_by_path_runs_and_its_metrics_are_logged(tmp_path):
    (tmp_path / "my_hooks.py").write_text(
        "def count(model, step, samples, scale=1):\n    return {'n_val': len(samples) * scale, 'step': step}\n")
    setup = make_tiny_setup(tmp_path)
    recipe = write_recipe(tmp_path / "r.yaml", setup, tmp_path / "run", {
        "trainer": {"algorithm": "sft", "eval_steps": 2},
        "sft": {"steps": 2, "global_samples_per_step": 2},
        "hooks": [{"name": "./my_hooks.py:count", "kwargs": {"scale": 10}}, {"name": "eval_grounding"},
                  {"name": "save_samples", "kwargs": {"num_samples": 2}}],
    })
    run_sft(str(recipe))
    written = json.loads((tmp_path / "run" / "eval" / "step-000002.json").read_text())
    n_val = sum(1 for _ in open(setup["data"] / "val.jsonl"))
    assert written["eval/n_val"] == 10 * n_val and written["eval/step"] == 2
    assert "eval/temporal_grounding/mIoU" in written and "eval/rewards/total" in written
    assert len((tmp_path / "run" / "samples" / "step-000002.jsonl").read_text().splitlines()) == 2
    logged = [json.loads(line) for line in open(tmp_path / "run" / "metrics.jsonl") if "eval/n_val" in line]
    assert logged and logged[0]["step"] == 2
