"""Freeze switches and LoRA on both tiny architectures."""

from __future__ import annotations

import pytest

from rlvid.config import ModelConfig
from rlvid.models.loading import load_policy
from rlvid.models.tiny import make_tiny_model
from rlvid.models.trainable import apply_trainable, trainable_counts


@pytest.fixture(scope="module", params=["qwen2_5_vl", "qwen3_vl"])
def model_dir(request, tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp(request.param) / "m", arch=request.param)


def test_full_model_trains_by_default(model_dir):
    counts = trainable_counts(apply_trainable(load_policy(ModelConfig(path=str(model_dir))), ModelConfig()))
    assert counts["trainable"] == counts["total"]
    assert counts["vision_tower_trainable"] > 0 and counts["projector_trainable"] > 0 and counts["llm_trainable"] > 0


@pytest.mark.parametrize("part", ["vision_tower", "projector", "llm"])
def test_each_freeze_switch_freezes_only_its_part(model_dir, part):
    cfg = ModelConfig(path=str(model_dir), **{f"freeze_{part}": True})
    counts = trainable_counts(apply_trainable(load_policy(cfg), cfg))
    assert counts[f"{part}_trainable"] == 0
    assert all(counts[f"{p}_trainable"] > 0 for p in ("vision_tower", "projector", "llm") if p != part)


def test_lora_trains_only_adapters(model_dir):
    cfg = ModelConfig(path=str(model_dir))
    cfg.lora.enabled = True
    cfg.lora.r = 4
    model = apply_trainable(load_policy(cfg), cfg)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n for n in names)
    assert any("q_proj" in n for n in names)


def test_freezing_everything_is_an_error(model_dir):
    cfg = ModelConfig(path=str(model_dir), freeze_vision_tower=True, freeze_projector=True, freeze_llm=True)
    with pytest.raises(ValueError, match="nothing left to train"):
        apply_trainable(load_policy(cfg), cfg)


def test_counts_use_the_full_size_of_zero3_partitioned_parameters():
    import torch

    layer = torch.nn.Linear(4, 3)
    for p in layer.parameters():  # as DeepSpeed ZeRO-3 leaves them: an empty local tensor, the size in ds_numel
        p.ds_numel = p.numel()
        p.data = torch.empty(0)
    counts = trainable_counts(layer)
    assert counts["trainable"] == counts["total"] == counts["llm_trainable"] == 15
