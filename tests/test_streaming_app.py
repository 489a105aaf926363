"""`rlvid train` / `rlvid eval` on a streaming recipe: the run folder, the saved model, the streaming metrics."""

import json
import shutil
from pathlib import Path

import pytest
import yaml

from rlvid.app.eval import run_eval
from rlvid.app.stream_recipe import is_streaming_recipe, load_stream_recipe
from rlvid.app.train import run_train
from rlvid.models.stream_lm import load_stream_lm

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "grpo_streaming.yaml"
TINY = ["streaming.steps=2", "streaming.sft_steps=2", "streaming.num_generations=2", "streaming.streams_per_step=2",
        "data.chunks=4", "data.train=4", "data.held_out=3"]


def test_the_shipped_recipe_is_a_streaming_recipe_and_bad_keys_name_the_file(tmp_path):
    assert is_streaming_recipe(RECIPE)
    recipe = load_stream_recipe(RECIPE)
    assert recipe.streaming.credit == "decision" and recipe.data.kinds == ["alert"]
    assert load_stream_recipe(RECIPE, ["streaming.lr=1e-3"]).streaming.lr == 1e-3  # YAML reads 1e-3 as a string
    with pytest.raises(ValueError, match=r"grpo_streaming.yaml: unknown key 'streaming.lrr'"):
        load_stream_recipe(RECIPE, ["streaming.lrr=1"])
    with pytest.raises(ValueError, match=r"'streaming.credit' must be one of"):
        load_stream_recipe(RECIPE, ["streaming.credit=token"])
    with pytest.raises(ValueError, match=r"'data.chunks' must be int"):
        load_stream_recipe(RECIPE, ["data.chunks=many"])
    plain = tmp_path / "plain.yaml"
    plain.write_text(yaml.safe_dump({"model": {"path": "x"}}))
    assert not is_streaming_recipe(plain) and not is_streaming_recipe(tmp_path / "missing.yaml")


def test_rlvid_train_then_eval_on_the_streaming_recipe(tmp_path):
    recipe = tmp_path / "grpo_streaming.yaml"
    shutil.copy(RECIPE, recipe)
    out = tmp_path / "run"
    final = run_train(str(recipe), [*TINY, f"output_dir={out}"])
    assert final == out / "final"
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [x.get("step") for x in lines] == [None, 1, 2, None]
    assert lines[0]["eval"] == "sft" and lines[-1]["eval"] == "final" and "rewards/stream_timing" in lines[1]
    model = load_stream_lm(final)
    assert (out / "sft" / "stream_lm.pt").is_file() and model.vocab.encode("red circle")
    assert run_eval(str(recipe), None, [*TINY, f"output_dir={out}"]) == 0
    metrics = json.loads((out / "eval_held_out" / "metrics.json").read_text())
    assert metrics["stream/timing_f1"] == pytest.approx(lines[-1]["stream/timing_f1"])  # same greedy rollouts
    assert len((out / "eval_held_out" / "predictions.jsonl").read_text().splitlines()) == 3
    with pytest.raises(FileNotFoundError, match="stream_lm.json not found"):
        run_eval(str(recipe), str(tmp_path), TINY)
