"""A reward written for TRL runs unchanged: called as TRL's GRPOTrainer calls it (`prompts`, `completions`,
`completion_ids`, `trainer_state`, dataset columns such as `solution`), by `rewards.score` and from a recipe."""

from __future__ import annotations

import re

import pytest

from rewards import compose_rewards, reward_state, score
from rlvid.data.sample import Sample


# Written exactly as TRL's documentation shows ("Using a custom reward function"): a dataset column by name.
def reward_func(completions, ground_truth, **kwargs):
    # Regular expression to capture content inside \boxed{}
    matches = [re.search(r"\\boxed\{(.*?)\}", completion) for completion in completions]
    contents = [match.group(1) if match else "" for match in matches]
    # Reward 1 if the content is the same as the ground truth, 0 otherwise
    return [1.0 if c == gt else 0.0 for c, gt in zip(contents, ground_truth)]  # noqa: B905 (verbatim)


def accuracy_with_solution(completions, solution, **kwargs):
    return [1.0 if c.strip() == s else 0.0 for c, s in zip(completions, solution)]  # noqa: B905


def curriculum(completions, trainer_state, **kwargs):
    """TRL's example of reward shaping by training progress."""
    return [float(trainer_state.global_step) / max(trainer_state.max_steps, 1)] * len(completions)


def every_argument(prompts, completions, completion_ids, trainer_state, solution, **kwargs):
    """Records what TRL would pass, to check each argument's shape."""
    every_argument.seen = {"prompts": prompts, "ids": completion_ids, "state": trainer_state, "solution": solution,
                           "rest": set(kwargs)}
    return [0.0] * len(completions)


def _samples() -> list[Sample]:
    return [
        Sample("a", "a.mp4", 5.0, "open_qa", "What is 2+2?", answer="4", meta={"solution": "4", "ground_truth": "4"}),
        Sample("b", "b.mp4", 5.0, "open_qa", "What is 3+3?", answer="6", meta={"solution": "6", "ground_truth": "7"}),
    ]


def test_a_trl_reward_reads_dataset_columns_from_meta():
    rs = compose_rewards([reward_func, accuracy_with_solution])
    out = score(rs, _samples(), ["\\boxed{4}", "6"])
    assert out.scores["reward_func"] == [1.0, 0.0]  # "6" has no \boxed{}; b's ground_truth is 7 anyway
    assert out.scores["accuracy_with_solution"] == [0.0, 1.0]


def test_trl_arguments_prompts_ids_and_trainer_state():
    rs = compose_rewards([every_argument, curriculum])
    out = score(rs, _samples(), ["x", "y"], [[1, 2], [3]], trainer_state=reward_state(3, 12))
    seen = every_argument.seen
    assert len(seen["prompts"]) == 2 and "What is 2+2?" in seen["prompts"][0]
    assert seen["ids"] == [[1, 2], [3]] and seen["solution"] == ["4", "6"]
    assert seen["state"].global_step == 3 and seen["state"].max_steps == 12
    assert {"task", "answer", "meta", "ground_truth"} <= seen["rest"]
    assert out.scores["curriculum"] == [0.25, 0.25]
    # without a trainer (evaluation, selection) the state is step 0, never None
    assert score(rs, _samples(), ["x", "y"], [[1], [2]]).scores["curriculum"] == [0.0, 0.0]


def test_a_missing_column_is_named():
    samples = [Sample("a", "a.mp4", 5.0, "open_qa", "q?", answer="4")]
    with pytest.raises(Exception, match="solution"):
        score(compose_rewards([accuracy_with_solution]), samples, ["4"])


def test_meta_keys_never_reach_a_builtins_options():
    """A dataset column named like a builtin's option (`mode`, `think`) must not replace the recipe's option."""
    samples = [Sample("a", "a.mp4", 5.0, "open_qa", "q?", answer="4", meta={"mode": "x", "think": "y"})]
    rs = compose_rewards([{"name": "format", "kwargs": {"think": "optional"}}, {"name": "accuracy"}])
    out = score(rs, samples, ["<answer>4</answer>"])
    assert out.scores == {"format": [1.0], "accuracy": [1.0]}


def test_a_trl_reward_by_file_path_from_a_recipe_entry(tmp_path):
    (tmp_path / "trl_rewards.py").write_text(
        "def accuracy_reward(completions, solution, **kwargs):\n"
        "    return [float(c.strip() == s) for c, s in zip(completions, solution)]\n")
    rs = compose_rewards([{"name": "./trl_rewards.py:accuracy_reward", "weight": 2.0}], base_dir=tmp_path)
    out = score(rs, _samples(), ["4", "5"])
    assert out.total == [2.0, 0.0]
