"""Trainers built from objects (no recipe-driven construction inside them), observed one step at a time."""

from __future__ import annotations

import pytest
import torch
from tiny_setup import make_tiny_setup, write_recipe

from rewards import compose_rewards
from rlvid.config import load_recipe
from rlvid.data.recipe_data import load_split, make_input_builder
from rlvid.models.loading import load_policy, load_processor
from rlvid.policy import Policy
from rlvid.rollout import Rollouts
from rlvid.trainers.grpo import GRPOTrainer
from rlvid.trainers.sft import SFTTrainer


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    root = tmp_path_factory.mktemp("compose")
    setup = make_tiny_setup(root)
    recipe = load_recipe(write_recipe(root / "r.yaml", setup, root / "run", {
        "trainer": {"max_steps": 1, "lr": 0.05, "beta": 0.0}, "sft": {"global_samples_per_step": 2}}))
    builder = make_input_builder(recipe, load_processor(recipe.model.path))
    return recipe, builder, load_split(recipe, "train")[:4]


def _params(model) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


class RecordingEngine:
    """A rollout engine that hands out fixed completions (so the rewards are known) and records its calls."""

    def __init__(self, tokenizer, texts: list[str]):
        self.tokenizer, self.texts, self.calls, self.synced = tokenizer, texts, [], 0

    def generate(self, batch, num_generations, sampling) -> Rollouts:
        self.calls.append(([s.id for s in batch], num_generations))
        texts = [self.texts[g % len(self.texts)] for _ in batch for g in range(num_generations)]
        ids = [self.tokenizer(t, add_special_tokens=False)["input_ids"] + [self.tokenizer.eos_token_id] for t in texts]
        return Rollouts([i for i in range(len(batch)) for _ in range(num_generations)], ids, texts,
                        truncated=[False] * len(texts))

    def sync_weights(self, model) -> None:
        self.synced += 1


def test_grpo_trainer_from_objects_scores_with_the_callable_and_updates_the_policy(parts, tmp_path):
    recipe, builder, samples = parts
    seen = {}

    def length(completions, answer, completion_ids, **columns):
        seen.update(n=len(completions), answers=list(answer), ids=completion_ids, columns=set(columns))
        return [len(c) / 10 for c in completions]

    policy = Policy(load_policy(recipe.model), builder, reuse_vision=True, shared_prefix=True)
    engine = RecordingEngine(builder.processor.tokenizer, ["<answer>1.0 to 2.0</answer>", "no", "<answer>x</answer>",
                                                           "a longer answer without tags"])
    trainer = GRPOTrainer(recipe, policy, samples, reward_set=compose_rewards([length]), engine=engine,
                          output_dir=tmp_path / "run")
    before = _params(policy.model)
    prompts = trainer.local_batch(0)
    metrics = trainer.train_step(prompts, 0)

    assert engine.calls == [([s.id for s in prompts], 4)] and engine.synced == 1
    assert seen["n"] == 8 and seen["answers"] == [s.answer for s in prompts for _ in range(4)]
    assert {"id", "video", "duration", "task", "intervals"} <= seen["columns"]
    assert seen["ids"][0][-1] == builder.processor.tokenizer.eos_token_id  # the engine's token ids reach rewards
    expected = sum(len(t) / 10 for t in engine.texts) / 4
    assert metrics["rewards/length"] == pytest.approx(expected)
    assert metrics["rollout/num_completions"] == 8.0
    assert metrics["vision/computed"] == 0.0  # the policy's cache reports: the trainable tower is never cached
    assert not torch.equal(before, _params(policy.model))  # the step updated the policy it was handed


def test_sft_trainer_from_objects_lowers_the_target_loss(parts, tmp_path):
    recipe, builder, samples = parts
    policy = Policy(load_policy(recipe.model), builder)
    trainer = SFTTrainer(recipe, policy, samples, output_dir=tmp_path / "run")
    batch = trainer.local_batch(0)
    first = trainer.train_step(batch, 0)["loss"]
    second = trainer.train_step(batch, 1)["loss"]
    assert second < first
