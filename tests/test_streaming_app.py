"""`rlvid train` / `rlvid eval` on a streaming recipe: the shared recipe loader, loop, hooks, run folder and eval."""

import importlib.util
import json
from pathlib import Path

import pytest
import yaml

from rlvid.app.eval import run_eval
from rlvid.app.train import run_sft, run_train
from rlvid.config import RecipeError, load_recipe
from rlvid.data.loaders import DataError
from rlvid.models.stream_lm import load_stream_lm
from rlvid.trainers.run_folder import RunFolderError

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "grpo_streaming.yaml"
TINY = ["trainer.max_steps=2", "sft.steps=2", "sft.global_samples_per_step=2", "rollout.num_generations=2",
        "trainer.global_prompts_per_step=2", "streaming.synthetic.chunks=4", "streaming.synthetic.train=4",
        "streaming.synthetic.val=3", "trainer.save_steps=1", "trainer.eval_steps=1", "logging.wandb=disabled"]


def test_the_shipped_recipe_loads_through_rlvid_config_and_bad_keys_name_the_file(tmp_path):
    recipe = load_recipe(RECIPE)
    assert recipe.streaming.enabled and recipe.streaming.credit == "decision"
    assert recipe.streaming.synthetic.kinds == ["alert"] and recipe.trainer.algorithm == "grpo"
    assert load_recipe(RECIPE, ["trainer.lr=1e-3"]).trainer.lr == 1e-3
    with pytest.raises(RecipeError, match=r"unknown key 'streaming.crdit'. Did you mean 'streaming.credit'"):
        load_recipe(RECIPE, ["streaming.crdit=decision"])
    with pytest.raises(RecipeError, match=r"'streaming.credit' must be one of \['decision', 'trajectory'\]"):
        load_recipe(RECIPE, ["streaming.credit=token"])
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"base": str(RECIPE), "streaming": {"synthetic": {"chunks": "many"}}}))
    with pytest.raises(RecipeError, match=r"bad.yaml: 'streaming.synthetic.chunks'"):
        load_recipe(bad)
    bad.write_text(yaml.safe_dump({"base": str(RECIPE), "trainer": {"algorithm": "sft"}}))
    with pytest.raises(RecipeError, match=r"bad.yaml: 'trainer.algorithm' must be grpo or mdpo with streaming"):
        load_recipe(bad)
    assert importlib.util.find_spec("rlvid.app.stream_recipe") is None  # one recipe loader, not two


def test_rlvid_train_then_eval_on_the_streaming_recipe(tmp_path):
    out = tmp_path / "run"
    final = run_train(str(RECIPE), [*TINY, f"trainer.output_dir={out}"])
    assert final == out / "final" and (out / "final" / "complete").is_file()
    assert (out / "sft" / "final" / "stream_lm.pt").is_file()  # the warm start is the SFT stage, in its own folder
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if "rewards/stream_timing" in r]
    eval_rows = [r for r in rows if "eval/stream/timing_f1" in r]
    assert [r["step"] for r in train_rows] == [1, 2] and [r["step"] for r in eval_rows] == [1, 2]
    assert {"lr", "time/step", "skipped_nonfinite"} <= set(train_rows[0])
    assert (out / "eval" / "step-000002.json").is_file()
    for step in (1, 2):  # checkpoints load as models too (model.safetensors + stream_lm.json)
        assert load_stream_lm(out / "checkpoints" / f"step-{step:06d}").vocab.encode("red circle")

    assert run_eval(str(RECIPE), None, [*TINY, f"trainer.output_dir={out}"]) == 0
    metrics = json.loads((out / "final" / "eval_val" / "metrics.json").read_text())
    assert metrics["stream/timing_f1"] == pytest.approx(eval_rows[-1]["eval/stream/timing_f1"])  # same greedy rollouts
    assert metrics["stream/count"] == 3
    predictions = [json.loads(x) for x in (out / "final" / "eval_val" / "predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == 3 and predictions[0]["stream_events"] and "score" in predictions[0]
    assert all(line.startswith("<t=") for p in predictions for line in p["completion"].splitlines())

    with pytest.raises(RunFolderError, match="already holds a training run"):  # the run folder is protected
        run_train(str(RECIPE), [*TINY, f"trainer.output_dir={out}"])
    with pytest.raises(FileNotFoundError, match="stream_lm.json not found"):
        run_eval(str(RECIPE), str(tmp_path), TINY)


def test_rlvid_sft_on_a_streaming_recipe_runs_the_warm_start_alone(tmp_path):
    out = tmp_path / "sft_only"
    final = run_sft(str(RECIPE), [*TINY, "hooks=[]", f"trainer.output_dir={out}"])
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert final == out / "final" and [r["stage"] for r in rows if "loss" in r] == ["sft", "sft"]
    assert load_stream_lm(final).vocab.encode("red circle")


def test_a_streaming_run_reads_data_files_with_stream_events(tmp_path):
    from rlvid.app.stream_compose import stream_clips
    from rlvid.data.synthetic_streaming import make_stream_clips, write_streaming_data

    data = tmp_path / "data"
    drawn = make_stream_clips(4, ("alert", "magqa"), seed=3, num_chunks=4)
    write_streaming_data(data, drawn, "train")
    write_streaming_data(data, drawn[:2], "val")
    files = [f"data.train={data / 'train.jsonl'}", f"data.val={data / 'val.jsonl'}", "data.video.fps=2.0"]
    recipe = load_recipe(RECIPE, [*TINY, *files])
    clips = stream_clips(recipe, "train")
    assert [c.sample.id for c in clips] == [c.sample.id for c in drawn]
    assert [tuple(c.frames.shape[:1]) for c in clips] == [(8,)] * 4  # 4 chunks of 1 s at 2 fps, as drawn
    assert clips[1].sample.stream_events == drawn[1].sample.stream_events

    out = tmp_path / "run"
    final = run_train(str(RECIPE), [*TINY, *files, "sft.steps=0", f"trainer.output_dir={out}"])
    assert load_stream_lm(final).vocab.encode("what colour is the circle")  # the vocabulary is the files' words
    assert run_eval(str(RECIPE), None, [*TINY, *files, f"trainer.output_dir={out}"]) == 0
    assert json.loads((final / "eval_val" / "metrics.json").read_text())["stream/count"] == 2

    plain = tmp_path / "plain.jsonl"
    plain.write_text(json.dumps({"id": "p", "video": str(data / drawn[0].sample.video), "duration": 4.0,
                                 "task": "open_qa", "question": "What?", "answer": "x"}) + "\n")
    with pytest.raises(DataError, match=r"plain.jsonl:1: sample 'p' has no stream_events"):
        stream_clips(load_recipe(RECIPE, [*TINY, f"data.train={plain}"]), "train")


@pytest.mark.parametrize("command", [["mdpo-pairs"], ["select", "--out", "sel"]])
def test_commands_that_sample_with_the_vl_policy_refuse_a_streaming_recipe_by_name(tmp_path, command, capsys):
    from rlvid.cli import main

    assert main([command[0], str(RECIPE), *command[1:]]) == 2
    assert "streaming.enabled" in capsys.readouterr().err
