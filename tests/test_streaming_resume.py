"""Streaming runs in the loop: killed and resumed (`trainer.resume=auto`) they end where an uninterrupted run does;
the update's non-finite check; hooks that cannot run on a streaming policy are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from rlvid.app.stream_compose import streaming_grpo_trainer, streaming_sft_trainer
from rlvid.config import load_recipe
from rlvid.models.stream_lm import load_stream_lm
from rlvid.trainers.checkpoint import latest_checkpoint
from rlvid.trainers.loop import NonFiniteError

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "grpo_streaming.yaml"
CRASH_HOOK = '''
def crash(step, **_):
    if step == 3:
        raise KeyboardInterrupt("killed after step 3")
'''
SMALL = {"trainer": {"max_steps": 4, "save_steps": 2, "save_total_limit": 0, "global_prompts_per_step": 2,
                     "eval_steps": 0},
         "rollout": {"num_generations": 3}, "sft": {"steps": 0, "global_samples_per_step": 2},
         "streaming": {"synthetic": {"chunks": 4, "train": 4, "val": 2}}, "logging": {"wandb": "disabled"},
         "hooks": []}


def _recipe(path: Path, out: Path, **changes) -> Path:
    body = {"base": str(RECIPE), **SMALL, **changes}
    body["trainer"] = dict(SMALL["trainer"], output_dir=str(out), **changes.get("trainer", {}))
    path.write_text(yaml.safe_dump(body))
    return path


def _rows(run: Path) -> dict[int, dict]:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r for r in rows if "loss" in r}


@pytest.mark.parametrize("build", [streaming_grpo_trainer, streaming_sft_trainer], ids=["grpo", "sft"])
def test_killed_streaming_run_resumes_to_the_same_parameters(tmp_path, build):
    sft = {"sft": {"steps": 4, "global_samples_per_step": 2}} if build is streaming_sft_trainer else {}
    whole = build(load_recipe(_recipe(tmp_path / "whole.yaml", tmp_path / "whole", **sft)), tmp_path)
    whole_final = whole.fit()

    (tmp_path / "crash.py").write_text(CRASH_HOOK)
    killed = _recipe(tmp_path / "killed.yaml", tmp_path / "killed", hooks=[{"name": "./crash.py:crash",
                                                                         "every_n_steps": 1}], **sft)
    with pytest.raises(KeyboardInterrupt):
        build(load_recipe(killed), tmp_path).fit()
    assert latest_checkpoint(tmp_path / "killed").name == "step-000002"
    assert not (tmp_path / "killed" / "final").exists()

    resumed = _recipe(tmp_path / "resumed.yaml", tmp_path / "killed", trainer={"resume": "auto"}, **sft)
    trainer = build(load_recipe(resumed), tmp_path)
    final = trainer.fit()
    assert trainer.step == 4
    a, b = load_stream_lm(whole_final).state_dict(), load_stream_lm(final).state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)
    start = build(load_recipe(_recipe(tmp_path / "start.yaml", tmp_path / "start", **sft)), tmp_path).policy.model
    assert any(not torch.equal(v, a[k]) for k, v in start.state_dict().items())  # training moved the weights
    once, twice = _rows(tmp_path / "whole"), _rows(tmp_path / "killed")
    assert sorted(twice) == [1, 2, 3, 4]  # every step logged exactly once
    for step in (3, 4):  # the resumed steps drew the same rollouts / targets
        assert twice[step]["loss"] == pytest.approx(once[step]["loss"], rel=1e-5, abs=1e-7)


def test_a_non_finite_gradient_stops_or_skips_the_streaming_update(tmp_path):
    recipe = load_recipe(_recipe(tmp_path / "r.yaml", tmp_path / "run"))
    trainer = streaming_sft_trainer(recipe, tmp_path)
    param = next(p for p in trainer.model.parameters() if p.requires_grad)
    before = param.detach().clone()
    trainer.update.samples = trainer.train_samples[:2]
    param.grad = torch.full_like(param, float("nan"))
    with pytest.raises(NonFiniteError, match="sft step 1: non-finite gradient; samples saved to"):
        trainer.update.step()
    assert (tmp_path / "run" / "bad_steps" / "step-000001-rank0.jsonl").is_file()

    recipe.trainer.on_nan = "skip"
    param.grad = torch.full_like(param, float("nan"))
    trainer.update.step()
    assert trainer.update.metrics == {"skipped_nonfinite": 1.0} and torch.equal(param.detach(), before)


def test_a_vl_hook_on_a_streaming_run_is_refused_by_name(tmp_path):
    recipe = load_recipe(_recipe(tmp_path / "r.yaml", tmp_path / "run", hooks=[{"name": "eval_all"}]))
    with pytest.raises(ValueError, match=r"hooks\[0\] \(eval_all\) decodes with the VL policy"):
        streaming_grpo_trainer(recipe, tmp_path)


def test_the_control_negates_the_steps_rewards_and_loss_but_not_the_hooks(tmp_path):
    steps = {}
    for sign in (1, -1):
        recipe = load_recipe(_recipe(tmp_path / f"r{sign}.yaml", tmp_path / f"run{sign}",
                                     trainer={"advantage_sign": sign}))
        trainer = streaming_grpo_trainer(recipe, tmp_path)
        steps[sign] = (trainer.train_step(trainer.local_batch(0), 0), trainer)
    (plus, a), (minus, b) = steps[1], steps[-1]
    assert plus["reward"] != 0 and minus["reward"] == pytest.approx(-plus["reward"])  # the same rollouts, negated
    assert abs(plus["loss"]) > 1e-4 and minus["loss"] == pytest.approx(-plus["loss"], abs=1e-6)  # ratio 1: -advantages
    assert [r.weight for r in b.reward_set.rewards] == [r.weight for r in a.reward_set.rewards]  # hooks report truly
