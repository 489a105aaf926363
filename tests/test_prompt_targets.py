"""Prompts from the recipe: SFT targets pass the recipe's own rewards (reasoning on and off), the format reward is
checked against `data.reasoning` at load, and prompt template files are checked with clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rewards import compose_rewards, score
from rlvid.config import RecipeError, load_recipe
from rlvid.data.loaders import DataError
from rlvid.data.prompt_files import resolve_prompt_template
from rlvid.data.prompts import DIRECT, REASONING, THINK_TEXT, build_messages, build_prompt, sft_target
from rlvid.data.sample import TASKS, Sample

REPO = Path(__file__).resolve().parents[1]
# grpo_streaming.yaml is read by scripts/streaming_evidence.py, not by load_recipe
RECIPES = sorted(p for p in (REPO / "recipes").glob("*.yaml") if p.name not in ("base.yaml", "grpo_streaming.yaml"))

RAW = {
    "temporal_grounding": dict(intervals=[[2.0, 5.5]]),
    "mcq": dict(options=["red", "blue", "green"], answer="C"),
    "grounded_qa": dict(answer="a red ball", intervals=[[2.0, 5.5]]),
    "dense_caption": dict(events=[{"start": 0, "end": 3.5, "caption": "a red circle moves left"},
                                  {"start": 3.5, "end": 9, "caption": "it stops"}]),
    "open_qa": dict(answer="a blue square"),
    "numeric": dict(answer="3"),
}
SAMPLES = {task: Sample.from_dict(dict(id=task, video="v.mp4", duration=10.0, question="What happens?", task=task,
                                       **raw)) for task, raw in RAW.items()}


def test_every_task_has_a_sample_here():
    assert set(SAMPLES) == set(TASKS) == set(THINK_TEXT)


def write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def format_recipe(tmp_path: Path, reasoning: bool, format_kwargs: dict | None = None, template: str = "default"):
    spec = {"name": "format", "kwargs": format_kwargs or {}}
    return load_recipe(write(tmp_path / "r.yaml", {
        "base": str(REPO / "recipes" / "base.yaml"),
        "data": {"reasoning": reasoning, "prompt_template": template},
        "rewards": {"functions": [spec, {"name": "accuracy"}, {"name": "temporal_iou"}]},
    }))


def scores_of(recipe, samples: list[Sample], base_dir: Path | None = None) -> dict[str, list]:
    rewards = compose_rewards(recipe.rewards.functions, base_dir=base_dir)
    template = resolve_prompt_template(recipe.data.prompt_template, base_dir)
    texts = [sft_target(s, template, recipe.data.reasoning) for s in samples]
    return score(rewards, samples, texts).scores


@pytest.mark.parametrize("reasoning", [True, False])
def test_sft_target_of_every_task_scores_1_on_the_recipes_rewards(tmp_path, reasoning):
    # The defaults: reasoning on with format's default think=required; reasoning off with think=forbidden.
    recipe = format_recipe(tmp_path, reasoning, None if reasoning else {"think": "forbidden"})
    samples = list(SAMPLES.values())
    scores = scores_of(recipe, samples)
    assert scores["format"] == [1.0] * len(samples)
    for label in ("accuracy", "temporal_iou"):
        assert all(v in (None, 1.0) for v in scores[label]), (label, scores[label])
    targets = [sft_target(s, "default", reasoning) for s in samples]
    assert all(t.startswith("<think>") == reasoning for t in targets)


def test_sft_target_follows_the_temporal_r1_answer_form(tmp_path):
    recipe = format_recipe(tmp_path, True, {"preset": "temporal_r1"}, template="temporal_r1")
    scores = scores_of(recipe, [SAMPLES["temporal_grounding"], SAMPLES["mcq"]])
    assert scores["format"] == [1.0, 1.0]
    assert '{"start_time": "2.0", "end_time": "5.5"}' in sft_target(SAMPLES["temporal_grounding"], "temporal_r1")


def _has_format_reward(path) -> bool:
    return any(s.name == "format" for s in load_recipe(path).rewards.functions)


# the M-DPO recipes rank by a task metric and name no format reward: nothing to check there
@pytest.mark.parametrize("path", [p for p in RECIPES if _has_format_reward(p)], ids=lambda p: p.name)
def test_shipped_recipes_sft_targets_pass_their_format_reward(path):
    recipe = load_recipe(path)
    formats = [s for s in recipe.rewards.functions if s.name == "format"]
    recipe.rewards.functions = formats
    tasks = recipe.data.tasks or list(TASKS)
    scores = scores_of(recipe, [SAMPLES[t] for t in tasks], path.parent)
    assert scores["format"] == [1.0] * len(tasks)


def test_sample_meta_think_is_the_think_text():
    sample = Sample.from_dict({**SAMPLES["numeric"].to_dict(), "meta": {"think": "Two cats, then one more."}})
    assert sft_target(sample) == "<think>Two cats, then one more.</think>\n<answer>3</answer>"


def test_format_reward_must_match_reasoning_at_load(tmp_path):
    with pytest.raises(RecipeError, match=r"rewards.functions\[0\]' \(format, think='required' \(the default\)\) "
                                          r"requires a <think> block, but data.reasoning is false"):
        format_recipe(tmp_path, False)
    with pytest.raises(RecipeError, match="preset 'temporal_r1'"):
        format_recipe(tmp_path, False, {"preset": "temporal_r1"})
    with pytest.raises(RecipeError, match="refuses the <think> block"):
        format_recipe(tmp_path, True, {"think": "forbidden"})
    format_recipe(tmp_path, False, {"think": "optional"})  # optional fits both


def test_reasoning_and_system_prompt_reach_the_messages():
    sample = SAMPLES["mcq"]
    assert REASONING in build_prompt(sample, reasoning=True) and DIRECT in build_prompt(sample, reasoning=False)
    messages = build_messages(sample, reasoning=False, system="You are a video expert.")
    assert messages[0] == {"role": "system", "content": "You are a video expert."}
    assert messages[1]["content"][1]["text"].endswith(DIRECT)


# ---------------------------------------------------------------- template files


def test_template_file_overrides_listed_tasks_and_keeps_the_rest(tmp_path):
    write(tmp_path / "prompts.yaml", {
        "templates": {"mcq": "Q: {question}\n{options}\n{format} {instruction}"},
        "formats": {"mcq": "Reply with one letter, e.g. <answer>B</answer>."},
    })
    template = resolve_prompt_template("prompts.yaml", tmp_path)  # found in the recipe's folder
    text = build_prompt(SAMPLES["mcq"], template, reasoning=False)
    assert text == ("Q: What happens?\nA. red\nB. blue\nC. green\n"
                    "Reply with one letter, e.g. <answer>B</answer>. " + DIRECT)
    assert build_prompt(SAMPLES["numeric"], template) == build_prompt(SAMPLES["numeric"], "default")


@pytest.mark.parametrize(("content", "message"), [
    ({"templates": {"mcq": "{question} {answer}"}}, r"templates.mcq: unknown placeholder\(s\) \['\{answer\}'\]"),
    ({"templates": {"mcq": "{question} {}"}}, r"unknown placeholder\(s\) \['\{\}'\]"),
    ({"templates": {"mcq": "Pick one. {options}"}}, r"templates.mcq: the template must contain \{question\}"),
    ({"templates": {"mcq": "{question"}}, "templates.mcq: not a valid format string"),
    ({"templates": {"quiz": "{question}"}}, "templates.quiz: unknown task"),
    ({"formats": {"mcq": 3}}, "formats.mcq must be a non-empty string"),
    ({"template": {}}, r"unknown key\(s\) \['template'\]"),
    ({"base": "fancy"}, "'base' must be a builtin prompt set"),
])
def test_bad_template_file_is_named_with_its_key(tmp_path, content, message):
    path = write(tmp_path / "bad.yaml", content)
    with pytest.raises(DataError, match=message) as err:
        resolve_prompt_template(str(path))
    assert str(path) in str(err.value)


def test_unknown_template_name_and_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"'defualt' is neither a builtin prompt set \(default, temporal_r1\)"):
        resolve_prompt_template("defualt")
    with pytest.raises(DataError, match="template file 'nope.yaml' not found"):
        resolve_prompt_template("nope.yaml", tmp_path)


def test_input_builder_takes_the_recipes_prompt_settings(tmp_path):
    from tiny_setup import make_tiny_setup

    from rlvid.data.recipe_data import make_input_builder
    from rlvid.models.loading import load_processor

    setup = make_tiny_setup(tmp_path / "tiny")
    write(tmp_path / "p.yaml", {"templates": {"mcq": "Quiz: {question}\n{options}\n{format}\n{instruction}"}})
    recipe = format_recipe(tmp_path, False, {"think": "optional"}, template="p.yaml")
    recipe.data.system_prompt = "You watch short clips."
    builder = make_input_builder(recipe, load_processor(str(setup["model"])), base_dir=tmp_path)
    text = builder.prompt_text(SAMPLES["mcq"])
    assert "You watch short clips." in text and "Quiz: What happens?" in text and DIRECT in text
    assert REASONING not in text
    recipe.data.prompt_template = "missing.yaml"
    with pytest.raises(DataError, match="template file 'missing.yaml' not found"):
        make_input_builder(recipe, load_processor(str(setup["model"])), base_dir=tmp_path)
