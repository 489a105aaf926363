"""Rollout-engine log-probs in GRPO: layout, truncated IS weights, mismatch metrics logged every step."""

from __future__ import annotations

import json
import math

import pytest
import torch
from tiny_setup import make_tiny_setup, write_recipe

from rlvid.algos import rollout_is
from rlvid.app.compose import grpo_trainer
from rlvid.config import load_recipe
from rlvid.policy.encode import collate, encode_prompts
from rlvid.policy.logprobs import completion_logprobs
from rlvid.rollout.is_correction import rollout_logprob_rows
from rlvid.trainers.grpo import GRPOTrainer

LENGTH_REWARD = "def length(completions, **kw):\n    return [len(c) / 10 for c in completions]\n"


def test_rollout_logprobs_land_on_the_completion_tokens():
    mask = torch.tensor([[0, 0, 1, 1, 1, 0], [0, 0, 0, 1, 1, 0]], dtype=torch.bool)
    rows = rollout_logprob_rows(mask, [[-1.0, -2.0, -3.0], [-4.0, -5.0]])
    assert rows.tolist() == [[0, 0, -1.0, -2.0, -3.0, 0], [0, 0, 0, -4.0, -5.0, 0]]
    with pytest.raises(ValueError, match="row 1: 3 rollout log-probs for 2 completion tokens"):
        rollout_logprob_rows(mask, [[-1.0, -2.0, -3.0], [-4.0, -5.0, -6.0]])


def test_truncated_weights_and_mismatch_metrics():
    # trainer's view starts at column 2 of the collated layout (T' = 3 of T = 5)
    old = torch.tensor([[-1.0, -1.0, -1.0], [-0.5, -0.5, 0.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]], dtype=torch.bool)
    rollout = torch.tensor([[0.0, 0.0, -1.5, -1.0, -3.0], [0.0, 0.0, -0.5, -0.5, 0.0]])
    weights, metrics = rollout_is(old, rollout, mask, "truncate", cap=2.0)
    assert weights[0].tolist() == pytest.approx([math.exp(0.5), 1.0, 2.0])  # exp(2) capped at 2
    assert metrics["rollout/logp_abs_diff"] == pytest.approx((0.5 + 0 + 2.0) / 5)
    assert metrics["rollout/is_ratio_max"] == pytest.approx(math.exp(2.0))
    assert metrics["rollout/is_truncated_fraction"] == pytest.approx(1 / 5)
    assert metrics["rollout/is_ratio_mean"] == pytest.approx((math.exp(0.5) + 1 + math.exp(2.0) + 2) / 5)
    none_weights, none_metrics = rollout_is(old, rollout, mask, "none", cap=2.0)
    assert none_weights is None and none_metrics == metrics  # the mismatch is logged either way
    with pytest.raises(ValueError, match="unknown trainer.rollout_is_correction 'clip'"):
        rollout_is(old, rollout, mask, "clip", cap=2.0)


class ShiftedLogprobEngine:
    """Wraps the hf engine and returns the policy's exact token log-probs minus `shift`, as a biased sampler would."""

    def __init__(self, trainer: GRPOTrainer, shift: float):
        self.inner, self.trainer, self.shift = trainer.engine, trainer, shift

    def generate(self, batch, num_generations, sampling):
        out = self.inner.generate(batch, num_generations, sampling)
        t = self.trainer
        encoded = encode_prompts(t.builder, batch)
        pad = t.processor.tokenizer.pad_token_id
        inputs, mask = collate([encoded[i] for i in out.prompt_index], out.token_ids, pad)
        with torch.no_grad():
            logp, m = completion_logprobs(t.model, inputs, mask, sampling.temperature)
        out.logprobs = [(logp[r][m[r]] - self.shift).tolist() for r in range(len(out))]
        return out

    def sync_weights(self, model):
        self.inner.sync_weights(model)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    return make_tiny_setup(tmp_path_factory.mktemp("is"))


def run_step(setup, tmp_path, name: str, correction: str, shift: float) -> dict:
    (tmp_path / "length.py").write_text(LENGTH_REWARD)  # varies within groups: nonzero advantages
    recipe = write_recipe(tmp_path / f"{name}.yaml", setup, tmp_path / name,
                          {"trainer": {"max_steps": 1, "rollout_is_correction": correction, "rollout_is_cap": 2.0},
                           "rewards": {"functions": [{"name": "./length.py:length"}]}})
    trainer = grpo_trainer(load_recipe(recipe), tmp_path)
    trainer.engine = ShiftedLogprobEngine(trainer, shift)
    trainer.fit()
    (row,) = [json.loads(line) for line in open(tmp_path / name / "metrics.jsonl") if '"rewards/total"' in line]
    return row


def test_grpo_logs_the_mismatch_and_applies_truncated_weights(setup, tmp_path):
    small = run_step(setup, tmp_path, "small", "none", 0.1)
    assert small["rollout/logp_abs_diff"] == pytest.approx(0.1, abs=1e-3)  # the engine's bias, seen by the trainer
    assert small["rollout/is_ratio_mean"] == pytest.approx(math.exp(0.1), rel=1e-3)
    assert small["rollout/is_truncated_fraction"] == 0.0
    assert "rollout_is_weight_mean" not in small  # logged, not corrected

    plain = run_step(setup, tmp_path, "plain", "none", 1.0)
    corrected = run_step(setup, tmp_path, "corrected", "truncate", 1.0)
    assert corrected["rollout/is_truncated_fraction"] == 1.0  # exp(1) > cap 2 on every token
    assert corrected["rollout_is_weight_mean"] == pytest.approx(2.0)
    assert plain["loss"] != 0.0
    assert corrected["loss"] == pytest.approx(2.0 * plain["loss"], rel=1e-4)  # every token's loss weighted by 2
