"""Streaming GRPO learns when to speak, and the sign-flipped control does not (the recipe's settings, seed 0).

The warm start says the answer at random chunks, so its timing is chance; GRPO with the recipe's
rewards must move the held-out greedy timing F1 up by a clear margin, while the same run with
every reward weight negated must not improve it. Spamming (a response after every chunk) scores
F1 2/9 on these 8-chunk streams, so F1 above that is not reachable by spamming.
"""

import copy
from pathlib import Path

import pytest
import torch

from rewards import compose_rewards
from rlvid.app.stream_recipe import load_stream_recipe
from rlvid.app.streaming import grpo_config, stream_clips, warm_started_model
from rlvid.trainers.streaming_grpo import StreamingGRPOTrainer

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "grpo_streaming.yaml"
MARGIN = 0.15


def _train(recipe, model, train, held_out, sign):
    specs = [dict(s, weight=sign * float(s.get("weight", 1.0))) for s in recipe.rewards]
    trainer = StreamingGRPOTrainer(copy.deepcopy(model), train, compose_rewards(specs), grpo_config(recipe))
    for step in range(recipe.streaming.steps):
        trainer.train_step(step)
    return trainer.evaluate(held_out)


@pytest.mark.slow
def test_streaming_grpo_learns_timing_and_the_control_does_not():
    torch.set_num_threads(1)
    recipe = load_stream_recipe(RECIPE)
    train, held_out = stream_clips(recipe)
    sft = warm_started_model(recipe, train, held_out)
    before = StreamingGRPOTrainer(sft, train, compose_rewards(recipe.rewards), grpo_config(recipe)).evaluate(held_out)
    grpo = _train(recipe, sft, train, held_out, 1.0)
    control = _train(recipe, sft, train, held_out, -1.0)
    assert grpo["timing_f1"] >= before["timing_f1"] + MARGIN, (before, grpo)
    assert grpo["timing_f1"] > 2 / 9 + MARGIN, grpo  # well above what spamming scores
    assert control["timing_f1"] <= before["timing_f1"], (before, control)
