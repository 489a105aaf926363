"""What the docs promise, checked: the hook named in base.yaml's example exists, a reward's `label` (rewards/README.md)
is accepted in a recipe file, and `model.save_merged` does what base.yaml says (merged weights instead of the
adapter; the adapter only when false)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from accelerate import Accelerator

from rewards import compose_rewards
from rlvid.config import load_recipe
from rlvid.trainers.hooks import resolve_hook

REPO = Path(__file__).resolve().parents[1]


def test_the_hooks_named_in_base_yaml_exist():
    line = next(x for x in (REPO / "recipes" / "base.yaml").read_text().splitlines() if x.startswith("hooks:"))
    names = re.findall(r"name: (\w+)", line) + re.findall(r"(eval_\w+|save_samples)", line.split(";")[-1])
    assert names
    for name in names:
        assert callable(resolve_hook(name))


def test_a_reward_label_in_a_recipe_file(tmp_path):
    (tmp_path / "r.yaml").write_text(f"base: {REPO / 'recipes' / 'base.yaml'}\n"
                                     "rewards:\n  functions:\n    - {name: format, weight: 0.5, label: fmt}\n")
    recipe = load_recipe(tmp_path / "r.yaml")
    assert compose_rewards(recipe.rewards.functions).labels == ["fmt"]


@pytest.mark.parametrize("merged", [True, False])
def test_save_merged_writes_merged_weights_instead_of_the_adapter(tmp_path, merged):
    from rlvid.config import ModelConfig
    from rlvid.models.loading import load_policy, load_processor
    from rlvid.models.tiny import make_tiny_model
    from rlvid.models.trainable import apply_trainable
    from rlvid.trainers.checkpoint import save_final_model

    cfg = ModelConfig(path=str(make_tiny_model(tmp_path / "model")), dtype="fp32")
    cfg.lora.enabled = True
    model = apply_trainable(load_policy(cfg), cfg)
    out = save_final_model(Accelerator(cpu=True), model, load_processor(cfg.path), tmp_path / "final",
                           save_merged=merged)
    assert (out / "adapter_config.json").is_file() != merged
    assert (out / "model.safetensors").is_file() == merged
