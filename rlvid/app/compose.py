"""The composition root: a recipe becomes the objects a trainer is made of, and the trainer.

Trainers take their collaborators as arguments (`rlvid.trainers.loop.Trainer`); this module is the
one place that reads the recipe to build them — processor and input builder, the `Policy` with its
efficiency settings, the reference, the rollout engine, the data splits, rewards and hooks — so
the CLI and the Python API assemble a run the same way, and a test can assemble one by hand.

    trainer = grpo_trainer(load_recipe("recipe.yaml"), recipe_dir=".")
    trainer.fit()
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from accelerate import Accelerator
from accelerate.utils import set_seed

from rewards import RewardSet, compose_rewards
from rlvid.data.model_inputs import VideoInputBuilder
from rlvid.data.recipe_data import load_split, make_input_builder
from rlvid.models.loading import load_policy, load_processor, use_reference_positions
from rlvid.models.trainable import apply_trainable
from rlvid.policy import Policy
from rlvid.rollout import make_engine
from rlvid.trainers.checkpoint import COMPLETE
from rlvid.trainers.grpo import GRPOTrainer
from rlvid.trainers.hooks import HookRunner
from rlvid.trainers.loop import make_accelerator
from rlvid.trainers.mdpo.pairs import Pair, model_key
from rlvid.trainers.mdpo.trainer import MDPOTrainer
from rlvid.trainers.sft import SFTTrainer


@dataclass
class Given:
    """Objects that Python code hands in instead of what the recipe names (`rlvid.api`); None = the recipe's.

    `model` is used as it is (its dtype and attention as loaded) and moved to this process's device; a reference
    model, where one is needed, is a frozen copy of it. `rewards` are reward callables or recipe entries.
    """

    model: Any = None
    processor: Any = None
    train: list | None = None
    val: list | None = None
    rewards: list | None = None


@dataclass
class Components:
    """What every trainer is handed: the accelerator, the trainable policy, data, rewards and hooks."""

    accelerator: Accelerator
    policy: Policy
    model_path: str
    train_samples: list = field(default_factory=list)
    val_samples: list = field(default_factory=list)
    reward_set: RewardSet | None = None
    hooks: HookRunner | None = None

    def trainer_kwargs(self, output_dir: str | Path | None) -> dict:
        return {"val_samples": self.val_samples, "reward_set": self.reward_set, "hooks": self.hooks,
                "accelerator": self.accelerator, "output_dir": output_dir}


def build_components(recipe, recipe_dir: str | Path | None = None, model_path: str | None = None,
                     accelerator: Accelerator | None = None, *, reuse_vision: bool | None = None,
                     shared_prefix: bool = False, load_train: bool = True, given: Given | None = None) -> Components:
    """Seed, processor, builder, splits (val capped by `trainer.max_eval_samples`), rewards, hooks and the
    trainable policy (LoRA / freezing applied) on this process's device; `given` objects replace the recipe's."""
    recipe_dir = Path(recipe_dir) if recipe_dir else Path.cwd()
    given = given or Given()
    accelerator = accelerator or make_accelerator(recipe)
    set_seed(recipe.trainer.seed)  # before the model: LoRA's initialisation draws from it
    model_path = model_path or recipe.model.path
    processor = given.processor or load_processor(model_path, recipe.model.trust_remote_code)
    builder = make_input_builder(recipe, processor, base_dir=recipe_dir)
    train = given.train if given.train is not None else load_split(recipe, "train") if load_train else []
    val = given.val if given.val is not None else load_split(recipe, "val") if recipe.data.val else []
    if recipe.trainer.max_eval_samples is not None:
        val = val[: recipe.trainer.max_eval_samples]
    specs = given.rewards if given.rewards is not None else recipe.rewards.functions
    reward_set = (compose_rewards(specs, on_error=recipe.rewards.on_error, base_dir=recipe_dir,
                                  timeout_s=recipe.rewards.timeout_s)
                  if specs else None)
    hooks = HookRunner(recipe.hooks, recipe, recipe_dir)
    if given.model is not None:
        model = use_reference_positions(given.model.to(accelerator.device))
    else:
        model = load_policy(recipe.model, model_path, device=accelerator.device)
    model = apply_trainable(model, recipe.model)
    policy = Policy(model, builder, reuse_vision=reuse_vision, shared_prefix=shared_prefix)
    return Components(accelerator, policy, model_path, train, val, reward_set, hooks)


def frozen_reference(recipe, model_path: str, builder: VideoInputBuilder, device, *, reuse_vision: bool | None = None,
                     shared_prefix: bool = False, model: Any = None) -> Policy:
    """The starting model, frozen, seeing the same inputs (and dropped tokens) as the policy; a copy of `model`
    (the untrained model handed in by Python code, its own copy) instead of loading `model_path` when given."""
    model = (use_reference_positions(model.to(device)) if model is not None
             else load_policy(recipe.model, model_path, device=device)).eval()
    model.requires_grad_(False)
    return Policy(model, builder, reuse_vision=reuse_vision, shared_prefix=shared_prefix)


def grpo_trainer(recipe, recipe_dir: str | Path | None = None, model_path: str | None = None,
                 output_dir: str | Path | None = None, accelerator: Accelerator | None = None,
                 given: Given | None = None) -> GRPOTrainer:
    """GRPO from a recipe: the policy with the recipe's efficiency settings, its rollout engine, and a frozen
    reference when the KL term needs one (beta > 0 without LoRA; with LoRA the adapter-free base is used)."""
    cfg = recipe.trainer
    given = given or Given()
    needs_reference = cfg.beta != 0.0 and not recipe.model.lora.enabled
    start = copy.deepcopy(given.model) if needs_reference and given.model is not None else None  # before any hook
    c = build_components(recipe, recipe_dir, model_path, accelerator, reuse_vision=cfg.reuse_vision,
                         shared_prefix=cfg.shared_prefix, given=given)
    if c.reward_set is None:
        raise ValueError("GRPO needs rewards: the recipe's rewards.functions is empty")
    engine = make_engine(recipe, c.policy)
    reference = None
    if needs_reference:
        reference = frozen_reference(recipe, c.model_path, c.policy.builder, c.accelerator.device,
                                     reuse_vision=cfg.reuse_vision, shared_prefix=cfg.shared_prefix, model=start)
    return GRPOTrainer(recipe, c.policy, c.train_samples, engine=engine, reference=reference,
                       **c.trainer_kwargs(output_dir))


def sft_trainer(recipe, recipe_dir: str | Path | None = None, model_path: str | None = None,
                output_dir: str | Path | None = None, accelerator: Accelerator | None = None,
                given: Given | None = None) -> SFTTrainer:
    """SFT on the recipe's train split."""
    c = build_components(recipe, recipe_dir, model_path, accelerator, given=given)
    return SFTTrainer(recipe, c.policy, c.train_samples, **c.trainer_kwargs(output_dir))


def mdpo_trainer(recipe, pairs: list[Pair], recipe_dir: str | Path | None = None, model_path: str | None = None,
                 output_dir: str | Path | None = None, accelerator: Accelerator | None = None) -> MDPOTrainer:
    """M-DPO on `pairs`, with a frozen reference model when `mdpo.reference: model` (and no LoRA); both with the
    recipe's efficiency settings (a pair's rows share its prompt forward, a video's features once per step)."""
    cfg = recipe.trainer
    c = build_components(recipe, recipe_dir, model_path, accelerator, load_train=False, reuse_vision=cfg.reuse_vision,
                         shared_prefix=cfg.shared_prefix)
    reference = None
    if recipe.mdpo.reference == "model" and not recipe.model.lora.enabled:
        reference = frozen_reference(recipe, c.model_path, c.policy.builder, c.accelerator.device,
                                     reuse_vision=cfg.reuse_vision, shared_prefix=cfg.shared_prefix)
    return MDPOTrainer(recipe, c.policy, pairs, reference=reference, model_key=model_key(c.model_path),
                       **c.trainer_kwargs(output_dir))


def sft_warm_start(recipe, recipe_dir: Path) -> Path:
    """Run (or reuse) the SFT stage in output_dir/sft before GRPO or M-DPO; returns its final model folder."""
    sft_dir = Path(recipe.trainer.output_dir) / "sft"
    final = sft_dir / "final"
    if (final / COMPLETE).is_file():
        return final
    trainer = sft_trainer(recipe, recipe_dir, output_dir=sft_dir)
    out = trainer.fit()
    del trainer
    return out
