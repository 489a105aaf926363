"""Weight-sync iteration: names (wrappers, peft, vLLM's mapper), sharded gathers, merged LoRA, buckets."""

from __future__ import annotations

import copy
import sys
import types
from contextlib import contextmanager

import pytest
import torch
from tiny_setup import make_tiny_setup

from rlvid.config.schema import ModelConfig
from rlvid.models.loading import load_policy
from rlvid.rollout.weight_names import (
    WeightNameError,
    check_vllm_names,
    checkpoint_name,
    missing_vllm_params,
    model_architecture,
    vllm_name,
)
from rlvid.rollout.weight_sync import buckets, iter_push_weights, layer_unit, materialize

QWEN25 = "Qwen2_5_VLForConditionalGeneration"
QWEN3 = "Qwen3VLForConditionalGeneration"


@pytest.fixture(scope="module", params=["qwen2_5_vl", "qwen3_vl"])
def model(request, tmp_path_factory):
    path = make_tiny_setup(tmp_path_factory.mktemp(f"sync-{request.param}"), arch=request.param)["model"]
    return load_policy(ModelConfig(path=str(path), dtype="fp32"))


@pytest.mark.parametrize("raw, expected", [
    ("model.language_model.layers.0.mlp.up_proj.weight", "model.language_model.layers.0.mlp.up_proj.weight"),
    ("module.model.visual.blocks.0.attn.qkv.weight", "model.visual.blocks.0.attn.qkv.weight"),  # DDP / DeepSpeed
    ("_orig_mod.model.visual.merger.mlp.0.bias", "model.visual.merger.mlp.0.bias"),  # torch.compile
    ("model._fsdp_wrapped_module.language_model._checkpoint_wrapped_module.norm.weight",
     "model.language_model.norm.weight"),
    ("base_model.model.model.language_model.layers.1.self_attn.q_proj.base_layer.weight",
     "model.language_model.layers.1.self_attn.q_proj.weight"),  # peft LoRA-wrapped layer
    ("base_model.model.model.language_model.layers.1.self_attn.q_proj.lora_A.default.weight", None),
    ("base_model.model.model.language_model.layers.1.self_attn.q_proj.lora_B.default.weight", None),
    ("base_model.model.lm_head.modules_to_save.default.weight", "lm_head.weight"),
    ("base_model.model.lm_head.original_module.weight", None),
])
def test_checkpoint_names_lose_wrapper_prefixes(raw, expected):
    assert checkpoint_name(raw) == expected


@pytest.mark.parametrize("arch, name, expected", [
    (QWEN25, "model.language_model.layers.0.self_attn.q_proj.weight",
     "language_model.model.layers.0.self_attn.q_proj.weight"),
    (QWEN25, "model.visual.blocks.3.attn.qkv.bias", "visual.blocks.3.attn.qkv.bias"),
    (QWEN25, "lm_head.weight", "language_model.lm_head.weight"),
    (QWEN25, "model.embed_tokens.weight", "language_model.model.embed_tokens.weight"),  # pre-4.52 checkpoint layout
    (QWEN3, "model.visual.deepstack_merger_list.0.norm.weight", "visual.deepstack_merger_list.0.norm.weight"),
    (QWEN3, "model.language_model.norm.weight", "language_model.model.norm.weight"),
    (QWEN3, "model.embed_tokens.weight", "model.embed_tokens.weight"),  # Qwen3-VL's mapper has no such rule
])
def test_vllm_mapper_prefix_rules(arch, name, expected):
    assert vllm_name(name, arch) == expected


def test_every_tiny_model_weight_has_a_place_in_vllm(model):
    arch = model_architecture(model)
    assert arch in (QWEN25, QWEN3)
    names = [name for name, _ in iter_push_weights(model)]
    mapped = check_vllm_names(names, arch)
    assert set(mapped) == set(names)
    assert {m.split(".")[0] for m in mapped.values()} == {"language_model", "visual"}
    assert any(m.startswith("visual.") for m in mapped.values())  # the vision tower is pushed too


def test_unmapped_names_are_listed_in_the_error():
    names = ["model.language_model.norm.weight", "model.embed_tokens.weight", "audio.proj.weight"]
    listed = r"2 parameter name\(s\).*audio\.proj\.weight, model\.embed_tokens\.weight"
    with pytest.raises(WeightNameError, match=listed):
        check_vllm_names(names, QWEN3)
    assert check_vllm_names(["anything.weight"], "SomeOtherArch") == {"anything.weight": "anything.weight"}
    assert missing_vllm_params({"a", "b"}, ["a", "b", "c", "d"]) == ["c", "d"]


def test_full_push_yields_each_weight_once_with_its_values(model):
    pushed = dict(iter_push_weights(model))
    params = dict(model.named_parameters())
    assert set(pushed) == set(params)  # the tied lm_head (same tensor as embed_tokens) is not sent twice
    assert "lm_head.weight" not in pushed
    for name, tensor in pushed.items():
        assert torch.equal(tensor, params[name])
    half = dict(iter_push_weights(model, dtype=torch.bfloat16))
    assert all(t.dtype == torch.bfloat16 for t in half.values())


def test_trainable_only_push_skips_frozen_parts(model):
    frozen = [p for n, p in model.named_parameters() if n.startswith("model.visual.")]
    try:
        for p in frozen:
            p.requires_grad_(False)
        names = [name for name, _ in iter_push_weights(model, trainable_only=True)]
        assert names and not any(n.startswith("model.visual.") for n in names)
        assert any(n.startswith("model.visual.") for n, _ in iter_push_weights(model))  # a full push sends it
    finally:
        for p in frozen:
            p.requires_grad_(True)


def test_lora_is_pushed_merged_without_touching_the_training_weights(model):
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])
    peft_model = get_peft_model(copy.deepcopy(model), config)
    torch.manual_seed(0)
    for name, p in peft_model.named_parameters():
        if "lora_B" in name:
            p.data.normal_(std=0.5)  # lora_B starts at zero: give the adapter an effect
    before = {n: p.detach().clone() for n, p in peft_model.named_parameters()}
    pushed = dict(iter_push_weights(peft_model))
    reference = copy.deepcopy(peft_model).merge_and_unload().state_dict()
    assert set(pushed) == set(dict(model.named_parameters()))  # base names only, no lora_ tensors
    changed = [n for n in pushed if not torch.equal(pushed[n], dict(model.named_parameters())[n])]
    assert changed and all(n.endswith(("q_proj.weight", "v_proj.weight")) for n in changed)
    for name, tensor in pushed.items():
        torch.testing.assert_close(tensor, reference[name], rtol=1e-6, atol=1e-6)
    for n, p in peft_model.named_parameters():
        assert torch.equal(p, before[n])  # merged for the push only
    trainable = [name for name, _ in iter_push_weights(peft_model, trainable_only=True)]
    layers = {n.rsplit(".", 1)[0] for n in changed}  # vLLM finalises a layer once all its tensors arrived: whole layers
    assert sorted(trainable) == sorted(n for n in pushed if n.rsplit(".", 1)[0] in layers)
    fused = [name for name, _ in iter_push_weights(peft_model, trainable_only=True, packed=QWEN_PACKED)]
    attention = {n.rsplit(".", 2)[0] for n in changed}  # q_proj and v_proj are parts of vLLM's qkv_proj
    assert sorted(fused) == sorted(n for n in pushed if n.rsplit(".", 2)[0] in attention and ".self_attn." in n
                                   and n.rsplit(".", 2)[1] in ("q_proj", "k_proj", "v_proj"))


QWEN_PACKED = {"qkv_proj": ["q_proj", "k_proj", "v_proj"], "gate_up_proj": ["gate_proj", "up_proj"], "qkv": ["qkv"]}


@pytest.mark.parametrize("name, unit", [
    ("model.language_model.layers.3.self_attn.k_proj.bias", "model.language_model.layers.3.self_attn.qkv_proj"),
    ("model.language_model.layers.3.mlp.up_proj.weight", "model.language_model.layers.3.mlp.gate_up_proj"),
    ("model.language_model.layers.3.mlp.down_proj.weight", "model.language_model.layers.3.mlp.down_proj"),
    ("model.visual.blocks.0.attn.qkv.weight", "model.visual.blocks.0.attn.qkv"),
    ("model.language_model.embed_tokens.weight", "model.language_model.embed_tokens"),
])
def test_layer_unit_groups_the_tensors_vllm_fuses_into_one_layer(name, unit):
    assert layer_unit(name, QWEN_PACKED) == unit


class FakeDTensorParam(torch.nn.Parameter):
    """An FSDP2-like parameter: the local value is a shard, `full_tensor()` all-gathers (here: returns the whole)."""

    def full_tensor(self):
        self.gathers = getattr(self, "gathers", 0) + 1
        return self._full.clone()


def test_fsdp2_dtensor_parameters_are_gathered_one_by_one():
    layer = torch.nn.Linear(4, 3)
    full_w, full_b = torch.randn(3, 4), torch.randn(3)
    for name, full in (("weight", full_w), ("bias", full_b)):
        shard = FakeDTensorParam(full[:1].clone())
        shard._full = full
        setattr(layer, name, shard)
    model = torch.nn.Sequential()
    model.add_module("proj", layer)
    pushed = list(iter_push_weights(model))
    assert [n for n, _ in pushed] == ["proj.weight", "proj.bias"]
    assert torch.equal(pushed[0][1], full_w) and torch.equal(pushed[1][1], full_b)
    assert layer.weight.gathers == 1 and layer.bias.gathers == 1


def test_zero3_parameters_are_gathered_copied_and_released(monkeypatch):
    full = torch.arange(12.0).reshape(3, 4)
    param = torch.nn.Parameter(torch.empty(0))
    param.ds_id = 7
    events = []

    @contextmanager
    def gathered_parameters(params, modifier_rank=None):
        assert modifier_rank is None  # read-only gather
        events.append("gather")
        for p in params:
            p.data = full.clone()
        yield
        for p in params:
            p.data = torch.empty(0)  # re-partitioned on exit
        events.append("release")

    zero = types.SimpleNamespace(GatheredParameters=gathered_parameters)
    monkeypatch.setitem(sys.modules, "deepspeed", types.SimpleNamespace(zero=zero))
    value = materialize(param)
    assert events == ["gather", "release"]
    assert torch.equal(value, full) and param.numel() == 0  # the copy outlives the gather


def test_buckets_respect_the_byte_limit_and_keep_order():
    tensors = [(f"t{i}", torch.zeros(n, dtype=torch.float32)) for i, n in enumerate([10, 10, 30, 5, 100, 1])]
    groups = list(buckets(tensors, max_bytes=100))  # 100 bytes = 25 floats
    assert [[n for n, _ in g] for g in groups] == [["t0", "t1"], ["t2"], ["t3"], ["t4"], ["t5"]]
    assert all(sum(t.numel() * 4 for _, t in g) <= 100 for g in groups if len(g) > 1)
    assert [len(g) for g in buckets(tensors, max_bytes=0)] == [1] * 6
    assert [n for g in buckets(tensors, max_bytes=10**9) for n, _ in g] == [n for n, _ in tensors]
