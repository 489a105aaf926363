"""Online group selection: zero-variance filtering and the dynamic-sampling refill loop."""

from __future__ import annotations

import logging

import pytest
import torch

from data_selection.online import fill_informative_groups, zero_variance
from rlvid.rollout import Rollouts

G = 3


def test_zero_variance_keeps_groups_whose_rewards_differ():
    rewards = [1, 1, 1, 0, 1, 0, 2, 2, 2, 0.5, 0.5, 0.7]
    sel = zero_variance(rewards, [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3])
    assert sel.groups == [1, 3]
    assert sel.rows == [3, 4, 5, 9, 10, 11]
    assert sel.metrics == {"selection/groups": 4.0, "selection/kept_groups": 2.0, "selection/filtered_fraction": 0.5}


def test_zero_variance_on_interleaved_rows_tensors_and_tolerance():
    sel = zero_variance(torch.tensor([1.0, 0.0, 1.0, 1.0]), [0, 1, 0, 1])
    assert (sel.groups, sel.rows) == ([1], [1, 3])
    assert zero_variance([1.0, 1.0 + 1e-9, 0.0, 1.0], [0, 0, 1, 1], atol=1e-6).groups == [1]
    assert zero_variance([], []).metrics["selection/filtered_fraction"] == 0.0


def test_zero_variance_refuses_a_group_split_across_processes():
    with pytest.raises(ValueError, match=r"groups \[1\] have \[2\] of 3 rows on this process"):
        zero_variance([0, 1, 0, 0, 1], [0, 0, 0, 1, 1], group_size=3)


def make_try(rewards_per_group: list[list[float]], tag: str):
    """(prompts, rollouts, rewards) of one generation round; texts name the prompt and row."""
    prompts = [f"{tag}{g}" for g in range(len(rewards_per_group))]
    index = [g for g, rs in enumerate(rewards_per_group) for _ in rs]
    texts = [f"{tag}{g}-{j}" for g, rs in enumerate(rewards_per_group) for j in range(len(rs))]
    rollouts = Rollouts(index, [[len(t)] for t in texts], texts, truncated=[False] * len(texts))
    return prompts, rollouts, [r for rs in rewards_per_group for r in rs]


FLAT, MIXED = [0.0] * G, [0.0, 1.0, 0.0]
TRIES = [
    make_try([FLAT, MIXED, FLAT, FLAT], "a"),  # 1 informative group: a1
    make_try([[1.0, 2.0, 3.0], FLAT, [0.0, 0.0, 0.5], FLAT], "b"),  # 2 more: b0, b2
    make_try([MIXED, MIXED, MIXED, FLAT], "c"),  # 3 more, only one needed: c0
]


def test_fill_refills_until_the_target_and_cuts_to_it():
    calls = []

    def generate(attempt):
        calls.append(attempt)
        return TRIES[attempt]

    fill = fill_informative_groups(generate, target_groups=4, max_tries=5)
    assert calls == [0, 1, 2]
    assert fill.prompts == ["a1", "b0", "b2", "c0"]
    assert fill.rollouts.prompt_index == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]  # renumbered into fill.prompts
    assert fill.rollouts.texts[:4] == ["a1-0", "a1-1", "a1-2", "b0-0"] and fill.rollouts.texts[-1] == "c0-2"
    assert fill.rewards == [0.0, 1.0, 0.0, 1.0, 2.0, 3.0, 0.0, 0.0, 0.5, 0.0, 1.0, 0.0]
    assert len(fill.rollouts.truncated) == 12 and fill.rollouts.logprobs is None
    assert (fill.tries, fill.rollouts_spent, fill.cap_hit) == (3, 36, False)
    assert fill.metrics["selection/filtered_fraction"] == pytest.approx(6 / 12)
    assert fill.metrics["selection/rollouts_spent"] == 36.0 and fill.metrics["selection/kept_groups"] == 4.0


def test_fill_stops_at_max_tries_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="data_selection"):
        fill = fill_informative_groups(lambda i: TRIES[i], target_groups=4, max_tries=2)
    assert fill.prompts == ["a1", "b0", "b2"] and fill.cap_hit and fill.tries == 2
    assert fill.metrics["selection/cap_hit"] == 1.0
    assert "dynamic sampling: 3 of 4 informative groups after max_tries=2 tries (24 rollouts)" in caplog.text


def test_fill_with_no_informative_group_returns_an_empty_batch_of_the_same_types():
    flat = make_try([FLAT, FLAT], "z")
    fill = fill_informative_groups(lambda i: (flat[0], flat[1], torch.tensor(flat[2])), target_groups=2, max_tries=2)
    assert fill.prompts == [] and len(fill.rollouts) == 0 and fill.rollouts_spent == 12
    assert isinstance(fill.rewards, torch.Tensor) and fill.rewards.shape == (0,)


def test_fill_keeps_tensor_rewards_and_one_try_equals_zero_variance():
    prompts, rollouts, rewards = TRIES[1]
    fill = fill_informative_groups(lambda i: (prompts, rollouts, torch.tensor(rewards)), target_groups=4, max_tries=1)
    sel = zero_variance(rewards, rollouts.prompt_index)
    assert fill.prompts == [prompts[g] for g in sel.groups]
    assert torch.equal(fill.rewards, torch.tensor([rewards[r] for r in sel.rows]))


def test_fill_keeps_generating_while_another_process_is_not_done():
    votes = iter([False, True])  # the other process needs a second round
    calls = []

    def generate(attempt):
        calls.append(attempt)
        return TRIES[2]

    fill = fill_informative_groups(generate, target_groups=2, max_tries=5, done_everywhere=lambda done: next(votes))
    assert calls == [0, 1] and fill.prompts == ["c0", "c1"] and fill.rollouts_spent == 24
