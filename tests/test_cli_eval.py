"""`rlvid make-tiny-model`, `make-synthetic-data` and `eval` from the command line."""

from __future__ import annotations

import json

import pytest

from rlvid.cli import main
from rlvid.data.loaders import load_jsonl
from rlvid.data.prompts import target_answer
from rlvid.eval.metrics import evaluate_completions


def _recipe(tmp_path, model, data):
    path = tmp_path / "recipe.yaml"
    path.write_text(
        f"model: {{path: {model}}}\n"
        f"data:\n  train: {data}/train.jsonl\n  val: {data}/val.jsonl\n"
        "  video: {max_frames: 8, total_pixels: 12544, min_pixels_per_frame: 3136}\n"
        "rollout: {max_new_tokens: 8}\n"
        f"trainer: {{output_dir: {tmp_path}/run}}\n"
    )
    return path


def test_ground_truth_answers_score_perfectly(synthetic_dir):
    samples = load_jsonl(synthetic_dir / "train.jsonl").samples
    metrics = evaluate_completions([target_answer(s) for s in samples], samples)
    for key in ("mcq/accuracy", "grounded_qa/accuracy", "temporal_grounding/R1@0.7"):
        assert metrics[key] == pytest.approx(1.0)
    assert metrics["temporal_grounding/mIoU"] > 0.95  # answers are written with one decimal


def test_cli_builds_model_and_evaluates(tmp_path, synthetic_dir, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = tmp_path / "model"
    assert main(["make-tiny-model", str(model), "--arch", "qwen3_vl"]) == 0
    recipe = _recipe(tmp_path, model, synthetic_dir)
    assert main(["eval", str(recipe), "data.max_samples=2", "--out", str(tmp_path / "ev")]) == 0
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    predictions = (tmp_path / "ev" / "predictions.jsonl").read_text().splitlines()
    assert len(predictions) == 2 and sum(v for k, v in metrics.items() if k.endswith("/count")) == 2
    assert metrics["eval/convention"] == "standard" and metrics["eval/dense"] == "rlvid"  # which were used
    assert "on val (2 samples)" in capsys.readouterr().out


def test_cli_eval_names_an_unknown_recipe_key(tmp_path, synthetic_dir, capsys):
    recipe = _recipe(tmp_path, tmp_path / "model", synthetic_dir)
    assert main(["eval", str(recipe), "data.vidoe.fps=1"]) == 2  # a user's mistake: one line, no traceback
    assert capsys.readouterr().err.startswith("rlvid: error: command line override 'data.vidoe.fps=1'")
