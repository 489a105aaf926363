"""Real-size presets: published parameter counts, shard-by-shard writing that loads, fixed completion lengths."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from rlvid.models import real_shapes
from rlvid.models.real_shapes import REHEARSAL, fix_completion_length, parameter_counts, write_real_shape_model

# The module's CPU-sized shape with one more layer: vocabulary 4096 > the tokenizer's ~1k ids, untied lm_head.
SMALL = replace(REHEARSAL, source="test", text={**REHEARSAL.text, "num_hidden_layers": 3})


@pytest.mark.parametrize("arch,preset,billions", [("qwen2_5_vl", "3b", 3.755), ("qwen2_5_vl", "7b", 8.292),
                                                  ("qwen3_vl", "4b", 4.438), ("qwen3_vl", "8b", 8.767)])
def test_presets_have_the_published_parameter_counts(arch, preset, billions):
    # Model cards: Qwen2.5-VL-3B 3.75B, 7B 8.29B; Qwen3-VL-4B 4.44B, 8B 8.77B parameters.
    counts = parameter_counts(arch, preset)
    assert counts["total"] / 1e9 == pytest.approx(billions, abs=0.001)
    assert (counts["lm_head"] > 0) == (preset in ("7b", "8b"))  # 3B / 4B tie lm_head to the embedding


def test_preset_of_the_wrong_architecture_is_refused(tmp_path):
    with pytest.raises(ValueError, match="qwen2_5_vl shape"):
        write_real_shape_model(tmp_path / "m", arch="qwen3_vl", preset="7b")


def test_shards_load_with_every_weight_in_bf16(tmp_path, monkeypatch):
    from transformers import AutoModelForImageTextToText

    monkeypatch.setitem(real_shapes.SHAPES, "small", SMALL)
    out = write_real_shape_model(tmp_path / "m", arch="qwen2_5_vl", preset="small", shard_bytes=200_000)
    index = json.loads((out / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 2 and all((out / s).is_file() for s in shards)
    model, info = AutoModelForImageTextToText.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert model.dtype == torch.bfloat16
    assert model.config.text_config.vocab_size == 4096 and model.config.text_config.num_hidden_layers == 3
    norm = model.model.language_model.layers[0].input_layernorm.weight
    assert torch.equal(norm, torch.ones_like(norm))
    q = model.model.language_model.layers[0].self_attn.q_proj
    assert 0.015 < float(q.weight.detach().float().std()) < 0.025 and torch.equal(q.bias, torch.zeros_like(q.bias))
    again = write_real_shape_model(tmp_path / "m2", arch="qwen2_5_vl", preset="small", shard_bytes=10**9)
    model2 = AutoModelForImageTextToText.from_pretrained(again)
    assert torch.equal(model2.model.language_model.layers[0].self_attn.q_proj.weight, q.weight)  # seeded by name


@pytest.mark.parametrize("shared_prefix", [True, False])  # shared prefill and plain `generate`
def test_fixed_completion_length_makes_every_rollout_max_new_tokens_long(tmp_path, monkeypatch, shared_prefix):
    from tiny_setup import make_tiny_setup, write_recipe

    from rlvid.config import load_recipe
    from rlvid.rollout import SamplingParams

    monkeypatch.setitem(real_shapes.SHAPES, "small", SMALL)
    setup = make_tiny_setup(tmp_path, n=20)
    model = write_real_shape_model(tmp_path / "m", arch="qwen2_5_vl", preset="small")
    fix_completion_length(model, 12)
    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", {**setup, "model": model}, tmp_path / "out",
                                      {"rollout": {"max_new_tokens": 12},
                                       "trainer": {"shared_prefix": shared_prefix}}))
    from rlvid.app.compose import grpo_trainer

    trainer = grpo_trainer(recipe, tmp_path)
    rollouts = trainer.engine.generate(trainer.local_batch(0), 4, SamplingParams.from_recipe(recipe.rollout))
    assert [len(ids) for ids in rollouts.token_ids] == [12] * 8
    assert any(i >= len(trainer.processor.tokenizer) for ids in rollouts.token_ids for i in ids)  # ids past it
    assert all(isinstance(t, str) for t in rollouts.texts)  # ... decode (to nothing) without error
