"""Loadable checkpoints: every step-N loads with from_pretrained, `rlvid export` (LoRA merged or not), `rlvid eval`
over several checkpoints writing next to each, the console signal of a run (baseline eval, warnings, summary)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from tiny_setup import make_tiny_setup, write_recipe
from transformers import AutoModelForImageTextToText

from rlvid.app.eval import run_eval
from rlvid.app.export import ExportError, export_checkpoint
from rlvid.app.train import run_train
from rlvid.cli import main


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.allclose(sa[k], sb[k], atol=1e-6) for k in sa)


@pytest.fixture(scope="module")
def grpo_run(tmp_path_factory):
    """A 2-step GRPO run with a checkpoint per step, a step-0 baseline and an eval hook (its console output too)."""
    root = tmp_path_factory.mktemp("export")
    setup = make_tiny_setup(root)
    recipe = write_recipe(root / "r.yaml", setup, root / "run", {
        "trainer": {"save_steps": 1, "save_total_limit": 0, "eval_on_start": True, "max_eval_samples": 2},
        "hooks": [{"name": "eval_all"}]})
    capture = pytest.MonkeyPatch()
    import io
    import sys
    out, err = io.StringIO(), io.StringIO()
    capture.setattr(sys, "stdout", out)
    capture.setattr(sys, "stderr", err)
    try:
        run_train(str(recipe))
    finally:
        capture.undo()
    return {"root": root, "recipe": recipe, "run": root / "run", "out": out.getvalue(), "err": err.getvalue()}


def test_the_run_prints_a_baseline_eval_warnings_and_a_summary(grpo_run):
    out, err = grpo_run["out"], grpo_run["err"]
    assert "grpo eval at step 0" in out and "grpo eval at step 2" in out  # step-0 baseline, then the last step
    assert "temporal_grounding  n=2" in out
    assert "grpo: 2 steps in" in out and f"final model: {grpo_run['run'] / 'final'}" in out
    assert f"rlvid plot {grpo_run['run']}" in out and "trainer.resume=auto" in out
    assert "completions were truncated at rollout.max_new_tokens" in err  # the tiny model never stops in 8 tokens
    assert ".tmp-step" not in err and "Removed shared tensor" not in err
    rows = [json.loads(line) for line in open(grpo_run["run"] / "metrics.jsonl")]
    assert any(r["step"] == 0 and "eval/temporal_grounding/mIoU" in r for r in rows)


def test_every_checkpoint_loads_as_a_model_folder(grpo_run):
    run = grpo_run["run"]
    for step in ("step-000001", "step-000002"):
        folder = run / "checkpoints" / step
        model = AutoModelForImageTextToText.from_pretrained(folder)
        saved = load_file(str(folder / "model.safetensors"))
        assert all(torch.equal(model.state_dict()[k], v) for k, v in saved.items())
    last = AutoModelForImageTextToText.from_pretrained(run / "checkpoints" / "step-000002")
    assert _same_weights(last, AutoModelForImageTextToText.from_pretrained(run / "final"))


def test_export_copies_a_full_checkpoint_without_the_resume_files(grpo_run, tmp_path):
    out = export_checkpoint(grpo_run["run"] / "checkpoints" / "step-000001", tmp_path / "m")
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= names
    assert not names & {"optimizer.bin", "complete", "trainer_state.json", "random_states_0.pkl"}
    AutoModelForImageTextToText.from_pretrained(out)
    with pytest.raises(ExportError, match="no such checkpoint folder"):
        export_checkpoint(tmp_path / "nowhere", tmp_path / "x")
    (tmp_path / "sharded").mkdir()
    with pytest.raises(ExportError, match="no model.safetensors"):
        export_checkpoint(tmp_path / "sharded", tmp_path / "x")


def test_eval_over_a_run_writes_next_to_each_checkpoint(grpo_run, tmp_path, capsys):
    run = grpo_run["run"]
    assert run_eval(str(grpo_run["recipe"]), run=str(run), overrides=["data.max_samples=2"]) == 0
    out = capsys.readouterr().out
    for folder in (run / "checkpoints" / "step-000001", run / "checkpoints" / "step-000002", run / "final"):
        metrics = json.loads((folder / "eval_val" / "metrics.json").read_text())
        assert metrics["temporal_grounding/count"] == 2
        rows = [json.loads(line) for line in open(folder / "eval_val" / "predictions.jsonl")]
        assert len(rows) == 2 and all(r["intervals"] and "mIoU" in r["score"] and "completion" in r for r in rows)
    assert not (run / "eval_val").exists()  # nothing into the recipe's run folder
    assert "run-step-000001" in out and "temporal_grounding/mIoU" in out.splitlines()[-4]


def test_cli_eval_takes_repeated_checkpoints(grpo_run, tmp_path):
    run = grpo_run["run"]
    ckpt = [str(run / "checkpoints" / s) for s in ("step-000001", "step-000002")]
    assert main(["eval", str(grpo_run["recipe"]), "data.max_samples=1", "--checkpoint", ckpt[0], "--checkpoint",
                 ckpt[1], "--out", str(tmp_path / "ev")]) == 0
    assert (tmp_path / "ev" / "run-step-000001" / "metrics.json").is_file()
    assert (tmp_path / "ev" / "run-step-000002" / "predictions.jsonl").is_file()


def test_lora_checkpoint_exports_merged_and_as_an_adapter(tmp_path):
    setup = make_tiny_setup(tmp_path)
    recipe = write_recipe(tmp_path / "r.yaml", setup, tmp_path / "run", {
        "model": {"lora": {"enabled": True, "r": 4, "alpha": 8}},
        "trainer": {"algorithm": "sft"}, "sft": {"steps": 1, "global_samples_per_step": 2, "lr": 1e-2}})
    run_train(str(recipe))
    step = tmp_path / "run" / "checkpoints" / "step-000001"
    assert not (step / "config.json").exists()  # peft state: not loadable as it is, export it
    merged = export_checkpoint(step, tmp_path / "merged", merge_lora=True)
    assert _same_weights(AutoModelForImageTextToText.from_pretrained(merged),
                         AutoModelForImageTextToText.from_pretrained(tmp_path / "run" / "final"))
    adapter = export_checkpoint(step, tmp_path / "adapter")
    assert (adapter / "adapter_config.json").is_file() and not (adapter / "config.json").exists()
    assert main(["eval", str(recipe), "data.max_samples=1", "--checkpoint", str(step)]) == 0  # exported on the fly
    assert (step / "eval_val" / "metrics.json").is_file()
