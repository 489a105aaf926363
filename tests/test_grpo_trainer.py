"""GRPO trainer behaviour on the tiny model: ratio 1 at mu = 1, zero KL to an identical reference, NaN handling."""

from __future__ import annotations

import json

import pytest
import torch
from tiny_setup import make_tiny_setup, write_recipe

from rlvid.app.compose import grpo_trainer
from rlvid.config import load_recipe
from rlvid.trainers.loop import NonFiniteError
from rlvid.trainers.selection import select_groups

LENGTH_REWARD = "def length(completions, **kw):\n    return [len(c) / 10 for c in completions]\n"
NAN_REWARD = "def nan_reward(completions, **kw):\n    return [float('nan')] * len(completions)\n"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    return make_tiny_setup(tmp_path_factory.mktemp("grpo"))


def _rows(path):
    return [json.loads(line) for line in open(path) if '"rewards/total"' in line]


def test_mu1_ratio_is_one_and_kl_to_identical_reference_is_zero(setup, tmp_path):
    recipe = write_recipe(tmp_path / "r.yaml", setup, tmp_path / "run",
                          {"trainer": {"max_steps": 1, "beta": 0.04, "num_iterations": 1}})
    trainer = grpo_trainer(load_recipe(recipe), tmp_path)
    assert trainer.reference is not None
    trainer.fit()
    (row,) = _rows(tmp_path / "run" / "metrics.jsonl")
    assert row["ratio_min"] == 1.0 and row["ratio_max"] == 1.0
    assert row["clip_fraction"] == 0.0
    assert row["kl_mean"] == pytest.approx(0.0, abs=1e-7)  # policy == reference before the first update
    assert row["rollout/num_completions"] == 8  # 2 prompts x G=4 on one process
    assert {"time/gen", "time/reward", "time/adv", "time/ref", "time/update_actor", "time/sync"} <= row.keys()


def test_mu2_reuses_rollouts_with_importance_ratios(setup, tmp_path):
    (tmp_path / "length.py").write_text(LENGTH_REWARD)  # varies within every group: nonzero advantages
    recipe = write_recipe(tmp_path / "r.yaml", setup, tmp_path / "run",
                          {"trainer": {"max_steps": 1, "num_iterations": 2, "lr": 0.05},
                           "rewards": {"functions": [{"name": "./length.py:length"}]}})
    grpo_trainer(load_recipe(recipe), tmp_path).fit()
    (row,) = _rows(tmp_path / "run" / "metrics.jsonl")
    assert row["ratio_max"] != 1.0 or row["ratio_min"] != 1.0  # second pass sees the updated policy


def test_beta_zero_loads_no_reference(setup, tmp_path):
    recipe = write_recipe(tmp_path / "r.yaml", setup, tmp_path / "run", {"trainer": {"beta": 0.0}})
    assert grpo_trainer(load_recipe(recipe), tmp_path).reference is None


def test_nan_reward_raises_naming_the_step_and_saves_samples(setup, tmp_path):
    (tmp_path / "nan.py").write_text(NAN_REWARD)
    recipe = write_recipe(tmp_path / "r.yaml", setup, tmp_path / "run",
                          {"rewards": {"functions": [{"name": "./nan.py:nan_reward"}]}})
    with pytest.raises(NonFiniteError, match="grpo step 1: non-finite reward") as err:
        grpo_trainer(load_recipe(recipe), tmp_path).fit()
    saved = tmp_path / "run" / "bad_steps" / "step-000001-rank0.jsonl"
    assert str(saved) in str(err.value)
    lines = [json.loads(x) for x in saved.read_text().splitlines()]
    assert len(lines) == 8 and all("completion" in x and x["sample"]["task"] == "temporal_grounding" for x in lines)


def test_nan_reward_with_on_nan_skip_skips_the_step(setup, tmp_path):
    (tmp_path / "nan.py").write_text(NAN_REWARD)
    recipe = write_recipe(tmp_path / "r.yaml", setup, tmp_path / "run",
                          {"rewards": {"functions": [{"name": "./nan.py:nan_reward"}]},
                           "trainer": {"on_nan": "skip", "max_steps": 2}})
    trainer = grpo_trainer(load_recipe(recipe), tmp_path)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.fit()
    rows = [json.loads(line) for line in open(tmp_path / "run" / "metrics.jsonl") if '"skipped_nonfinite"' in line]
    assert [r["skipped_nonfinite"] for r in rows] == [1.0, 1.0]
    for k, v in trainer.model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_more_generations_than_a_micro_batch_are_split(setup, tmp_path):
    recipe = write_recipe(tmp_path / "r.yaml", setup, tmp_path / "run",
                          {"rollout": {"num_generations": 6}, "trainer": {"micro_batch_size_per_device": 4,
                                                                          "max_steps": 1}})
    trainer = grpo_trainer(load_recipe(recipe), tmp_path)
    trainer.fit()
    (row,) = _rows(tmp_path / "run" / "metrics.jsonl")
    assert row["rollout/num_completions"] == 12 and row["skipped_nonfinite"] == 0.0


def test_select_groups_none_is_identity_and_zero_variance_drops_flat_groups():
    from rlvid.rollout import Rollouts

    r = Rollouts([0, 0, 1, 1], [[1], [2], [3], [4]], ["a", "b", "c", "d"], truncated=[False] * 4)
    rewards = torch.tensor([1.0, 1.0, 0.0, 1.0])
    p, r2, w, m = select_groups(["p0", "p1"], r, rewards, mode="none")
    assert r2 is r and w is rewards and m == {}
    p, r2, w, m = select_groups(["p0", "p1"], r, rewards, mode="zero_variance")
    assert r2.prompt_index == [1, 1] and w.tolist() == [0.0, 1.0]
    assert m["selection/filtered_fraction"] == 0.5 and m["selection/kept_groups"] == 1.0


PARITY_REWARD = (
    "def parity(completions, id, **kw):\n"
    "    # informative (varies with length) for odd sample ids, flat for even ones\n"
    "    return [len(c) / 10 if int(i[-1]) % 2 else 1.0 for c, i in zip(completions, id)]\n"
)
FLAT_REWARD = "def flat(completions, **kw):\n    return [1.0] * len(completions)\n"


def test_dynamic_sampling_refills_to_the_target_number_of_informative_groups(setup, tmp_path):
    (tmp_path / "parity.py").write_text(PARITY_REWARD)
    recipe = write_recipe(tmp_path / "r.yaml", setup, tmp_path / "run",
                          {"rewards": {"functions": [{"name": "./parity.py:parity"}]},
                           "selection": {"online": "dynamic_sampling", "max_tries": 6},
                           "trainer": {"max_steps": 2}})
    grpo_trainer(load_recipe(recipe), tmp_path).fit()
    rows = _rows(tmp_path / "run" / "metrics.jsonl")
    assert len(rows) == 2
    for row in rows:
        kept = row["selection/kept_groups"]
        assert row["rollout/num_completions"] == 4 * kept  # whole groups of G=4
        assert row["selection/rollouts_spent"] == 8 * row["selection/tries"]  # 2 prompts x G per try
        assert kept == 2 or row["selection/cap_hit"] == 1.0


def test_all_flat_groups_leave_an_empty_batch_that_is_handled(setup, tmp_path):
    (tmp_path / "flat.py").write_text(FLAT_REWARD)
    recipe = write_recipe(tmp_path / "r.yaml", setup, tmp_path / "run",
                          {"rewards": {"functions": [{"name": "./flat.py:flat"}]},
                           "selection": {"online": "dynamic_sampling", "max_tries": 2},
                           "trainer": {"max_steps": 1}})
    trainer = grpo_trainer(load_recipe(recipe), tmp_path)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.fit()
    (row,) = _rows(tmp_path / "run" / "metrics.jsonl")
    assert row["selection/kept_groups"] == 0 and row["selection/cap_hit"] == 1.0
    assert row["selection/tries"] == 2 and row["rollout/num_completions"] == 0
    for k, v in trainer.model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_train_order_follows_selection_weights(setup, tmp_path):
    from rlvid.data.loaders import load_jsonl, write_jsonl

    samples = load_jsonl(setup["data"] / "train.jsonl").samples[:6]
    weights = [0.0, 0.0, 5.0, 1.0, 0.0, 0.0]
    for s, w in zip(samples, weights, strict=True):
        s.meta["selection"] = {"weight": w}
    data = write_jsonl(samples, tmp_path / "selected.jsonl")
    overrides = {"data": {"train": str(data)}, "trainer": {"max_steps": 1}}
    trainer = grpo_trainer(load_recipe(write_recipe(tmp_path / "r.yaml", setup, tmp_path / "run", overrides)), tmp_path)
    drawn = [i for step in range(60) for i in trainer.batch_indices(step)]
    assert set(drawn) <= {2, 3} and drawn.count(2) > 2 * drawn.count(3)
    assert trainer.batch_indices(7) == trainer.batch_indices(7)  # a resumed run sees the same batches

    uniform = {**overrides, "selection": {"weighted_sampling": False}}
    trainer = grpo_trainer(load_recipe(write_recipe(tmp_path / "u.yaml", setup, tmp_path / "run2", uniform)), tmp_path)
    assert sorted(i for step in range(trainer.steps_per_epoch) for i in trainer.batch_indices(step)) == list(range(6))
