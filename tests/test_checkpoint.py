"""Checkpoints: a killed run resumes to the same parameters; an interrupted save harms nothing."""

from __future__ import annotations

import pytest
import torch
from accelerate import Accelerator
from safetensors.torch import load_file
from tiny_setup import make_tiny_setup, write_recipe

from rlvid.app.compose import grpo_trainer
from rlvid.config import load_recipe
from rlvid.trainers.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint

CRASH_HOOK = '''
def crash(step, **_):
    if step == 3:
        raise KeyboardInterrupt("killed after step 3")
'''


def _final_weights(run_dir):
    return load_file(str(run_dir / "final" / "model.safetensors"))


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_parameters(tmp_path):
    setup = make_tiny_setup(tmp_path)
    common = {"trainer": {"max_steps": 4, "save_steps": 2, "save_total_limit": 0}}
    whole = write_recipe(tmp_path / "whole.yaml", setup, tmp_path / "whole", common)
    grpo_trainer(load_recipe(whole), tmp_path).fit()

    (tmp_path / "crash.py").write_text(CRASH_HOOK)
    killed = write_recipe(tmp_path / "killed.yaml", setup, tmp_path / "killed",
                          dict(common, hooks=[{"name": "./crash.py:crash", "every_n_steps": 1}]))
    with pytest.raises(KeyboardInterrupt):
        grpo_trainer(load_recipe(killed), tmp_path).fit()
    assert latest_checkpoint(tmp_path / "killed").name == "step-000002"
    assert not (tmp_path / "killed" / "final").exists()

    resumed = write_recipe(tmp_path / "resumed.yaml", setup, tmp_path / "killed",
                           dict(common, trainer=dict(common["trainer"], resume="auto")))
    trainer = grpo_trainer(load_recipe(resumed), tmp_path)
    trainer.fit()
    assert trainer.step == 4
    a, b = _final_weights(tmp_path / "whole"), _final_weights(tmp_path / "killed")
    assert a.keys() == b.keys()
    changed = 0
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)
    init = load_file(str(setup["model"] / "model.safetensors"))
    changed = sum(not torch.equal(init[k], a[k]) for k in a if k in init)
    assert changed > 0  # training moved the weights, so equality above is not vacuous


def _tiny_state(tmp_path):
    acc = Accelerator(cpu=True)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    model, opt = acc.prepare(model, opt)
    return acc, model, opt


def test_interrupted_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    acc, model, opt = _tiny_state(tmp_path)
    good = save_checkpoint(acc, tmp_path, 1, {"epoch": 0})
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model.weight.add_(1.0)

    real_save = acc.save_state

    def dies_midway(path, **kw):
        real_save(path, **kw)  # files written ...
        raise KeyboardInterrupt("killed before the complete marker")  # ... but never marked complete

    monkeypatch.setattr(acc, "save_state", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(acc, tmp_path, 2, {"epoch": 0})
    monkeypatch.undo()
    assert latest_checkpoint(tmp_path) == good
    state = load_checkpoint(acc, good)
    assert state["step"] == 1
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, saved[k])
    # the next save clears the half-written folder and succeeds
    assert save_checkpoint(acc, tmp_path, 2, {"epoch": 0}).name == "step-000002"
    assert not list((tmp_path / "checkpoints").glob(".tmp-*"))
    assert latest_checkpoint(tmp_path).name == "step-000002"


def test_old_checkpoints_are_pruned(tmp_path):
    acc, model, opt = _tiny_state(tmp_path)
    for step in (1, 2, 3):
        save_checkpoint(acc, tmp_path, step, {}, keep=2)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-000002", "step-000003"]
