"""The Python API (docs/python_api.md): the page's example runs as written, and the TRL-shaped trainers
take a model object, datasets as dicts / Samples / `datasets.Dataset`, reward callables and keyword args."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from tiny_setup import SMALL_VIDEO, make_tiny_setup

from rlvid.config import RecipeError

DOC = Path(__file__).resolve().parents[1] / "docs" / "python_api.md"


def doc_python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


def test_the_doc_example_runs_as_written(tmp_path, monkeypatch, capsys):
    blocks = doc_python_blocks()
    assert len(blocks) >= 3
    monkeypatch.chdir(tmp_path)
    scope: dict = {"__name__": "__doc_example__"}
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), scope)  # noqa: S102 (the page's own code)
    assert (tmp_path / "demo/run/final/config.json").is_file()
    assert (tmp_path / "demo/trained/config.json").is_file()
    assert (tmp_path / "demo/run/metrics.jsonl").is_file() and (tmp_path / "demo/sft/final").is_dir()
    metrics = scope["metrics"]
    assert "eval/temporal_grounding/mIoU" in metrics and "eval_rewards/starts_right" in metrics
    assert "eval/" in capsys.readouterr().out


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    return make_tiny_setup(tmp_path_factory.mktemp("api"))


def _args(tmp_path, **kw):
    from rlvid import GRPOConfig

    settings = {"output_dir": str(tmp_path / "run"), "max_steps": 2, "num_generations": 4,
                "max_completion_length": 6, "prompts_per_step": 2, "report_to": "none",
                "overrides": {"model.dtype": "fp32", "data.video": dict(SMALL_VIDEO)}}
    return GRPOConfig(**{**settings, **kw})


def test_a_model_object_an_hf_dataset_and_a_trl_reward_with_trainer_state(setup, tmp_path):
    import datasets
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from rlvid import GRPOTrainer
    from rlvid.data.loaders import load_jsonl

    rows = []
    for s in list(load_jsonl(setup["data"] / "train.jsonl"))[:4]:
        row = s.to_dict()
        row["solution"] = f"{s.intervals[0][0]:.1f}"
        rows.append(row)
    seen = []

    def progress(completions, solution, trainer_state, **kwargs):
        seen.append((trainer_state.global_step, trainer_state.max_steps, list(solution)))
        return [0.5] * len(completions)

    model = AutoModelForImageTextToText.from_pretrained(setup["model"], dtype="float32")
    trainer = GRPOTrainer(model=model, processing_class=AutoProcessor.from_pretrained(setup["model"]),
                          reward_funcs=progress, train_dataset=datasets.Dataset.from_list(rows),
                          args=_args(tmp_path, beta=0.04))
    assert trainer.model is not None and trainer.trainer.reference is not None  # beta > 0: a frozen copy
    final = trainer.train()
    assert (final / "config.json").is_file()
    assert [(step, total) for step, total, _ in seen] == [(0, 2), (1, 2)]
    assert all(sol in {r["solution"] for r in rows} for _, _, sols in seen for sol in sols)


def test_evaluate_on_a_file_and_save_model(setup, tmp_path):
    from rlvid import GRPOTrainer

    trainer = GRPOTrainer(model=str(setup["model"]), reward_funcs=["format"],
                          train_dataset=str(setup["data"] / "train.jsonl"), args=_args(tmp_path, max_steps=1))
    assert trainer.recipe.model.path == str(setup["model"]) and trainer.recipe.trainer.max_steps == 1
    metrics = trainer.evaluate(str(setup["data"] / "val.jsonl"))
    assert "eval/temporal_grounding/mIoU" in metrics and "eval_rewards/format" in metrics
    out = trainer.save_model(tmp_path / "saved")
    assert (out / "config.json").is_file() and (out / "processor_config.json").is_file()


def test_bad_arguments_are_named(setup, tmp_path):
    from rlvid import GRPOConfig, GRPOTrainer, SFTConfig

    with pytest.raises(RecipeError, match="rollout.num_generations"):
        GRPOTrainer(model=str(setup["model"]), reward_funcs=["format"], train_dataset=[],
                    args=_args(tmp_path, num_generations=1))
    with pytest.raises(RecipeError, match="trainer.lrr"):
        GRPOConfig(overrides={"trainer.lrr": 1.0}).to_recipe()
    with pytest.raises(ValueError, match=r"train_dataset\[1\]"):
        GRPOTrainer(model=str(setup["model"]), reward_funcs=["format"], args=_args(tmp_path),
                    train_dataset=[{"id": "a", "video": "v.mp4", "duration": 4, "task": "temporal_grounding",
                                    "question": "q", "intervals": [[0, 1]]}, {"id": "b"}])
    with pytest.raises(TypeError, match="SFTConfig"):
        from rlvid import SFTTrainer

        SFTTrainer(model=str(setup["model"]), args=GRPOConfig())
    assert SFTConfig(max_steps=3).to_recipe()[0].sft.steps == 3


def test_import_rlvid_stays_light_and_names_the_api():
    import subprocess
    import sys

    code = ("import sys, rlvid; assert 'torch' not in sys.modules and 'rlvid.api' not in sys.modules; "
            "assert {'GRPOTrainer', 'GRPOConfig', 'SFTTrainer', 'SFTConfig'} <= set(dir(rlvid)); "
            "from rlvid import GRPOConfig; assert GRPOConfig().recipe is None")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)
    with pytest.raises(AttributeError, match="GRPOTrainr"):
        import rlvid

        rlvid.GRPOTrainr  # noqa: B018


def test_a_format_reward_against_the_prompts_is_refused(setup, tmp_path):
    """reward_funcs get the recipe's check: a bare "format" demands a think block the answer-only prompts never ask
    for, so every completion would score 0; the error names the entry and the fix."""
    from rlvid import GRPOConfig, GRPOTrainer

    answer_only = GRPOConfig(output_dir=str(tmp_path / "run"), max_steps=1, num_generations=2, report_to="none",
                             overrides={"data.reasoning": False})
    with pytest.raises(ValueError, match=r"reward_funcs\[1\]: \(format, think='required' \(the default\)\)"):
        GRPOTrainer(model=str(setup["model"]), reward_funcs=[lambda completions, **kw: [0.0] * len(completions),
                                                              "format"],
                    train_dataset=str(setup["data"] / "train.jsonl"), args=answer_only)
    trainer = GRPOTrainer(model=str(setup["model"]), train_dataset=str(setup["data"] / "train.jsonl"), args=answer_only,
                          reward_funcs=[{"name": "format", "kwargs": {"think": "forbidden"}}])
    assert trainer.recipe.data.reasoning is False
