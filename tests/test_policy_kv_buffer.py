"""Reserved KV room for decoding: the same cache contents as transformers' concatenating layer, the same tokens."""

from __future__ import annotations

import pytest
import torch
from test_efficiency_prefix import setup
from transformers.cache_utils import DynamicCache, DynamicLayer

import rlvid.policy.generate as generate_module
from rlvid.policy.kv_buffer import ReservedLayer, reserve_decode_room


def _kv(gen: torch.Generator, rows: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(rows, 2, n, 4, generator=gen), torch.randn(rows, 2, n, 3, generator=gen)


def test_reserved_layer_holds_what_the_concatenating_layer_holds():
    gen = torch.Generator().manual_seed(0)
    plain = DynamicLayer()
    plain.update(*_kv(gen, 3, 5))
    reserved = ReservedLayer(plain.keys, plain.values, room=4)
    for n in (1, 2, 1, 1, 3):  # 8 new slots for room 4: the last two updates run past the room
        k, v = _kv(gen, 3, n)
        expected = plain.update(k, v)
        got = reserved.update(k, v)
        assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])
        assert reserved.get_seq_length() == plain.get_seq_length()
    assert reserved._filled == -1  # ran out of room, and kept concatenating correctly
    fresh = ReservedLayer(plain.keys[:, :, :5], plain.values[:, :, :5], room=4)
    fresh.update(*_kv(gen, 3, 1))
    assert fresh.keys.data_ptr() == fresh._key_buffer.data_ptr()  # written in place, no new tensor


def test_reserved_layer_after_reorder_falls_back_to_concatenation():
    gen = torch.Generator().manual_seed(1)
    plain = DynamicLayer()
    plain.update(*_kv(gen, 2, 3))
    reserved = ReservedLayer(plain.keys, plain.values, room=8)
    rows = torch.tensor([1, 1, 0])
    plain.reorder_cache(rows)
    reserved.reorder_cache(rows)
    k, v = _kv(gen, 3, 2)
    assert torch.equal(reserved.update(k, v)[0], plain.update(k, v)[0])


def test_reserve_decode_room_leaves_other_caches_alone():
    assert reserve_decode_room(None, 4) is None
    cache = DynamicCache()
    cache.update(*_kv(torch.Generator().manual_seed(2), 1, 2), layer_idx=0)
    assert type(reserve_decode_room(cache, 0).layers[0]) is DynamicLayer
    assert type(reserve_decode_room(cache, 3).layers[0]) is ReservedLayer


@pytest.mark.parametrize("arch", ["qwen2_5_vl", "qwen3_vl"])
def test_decoding_with_reserved_room_samples_the_same_tokens(vl_models, grounding_prompts, arch, monkeypatch):
    model, builder = setup(vl_models[arch])
    model.eval()
    inputs = builder.prompts(grounding_prompts).inputs
    options = dict(do_sample=True, max_new_tokens=12, min_new_tokens=12, output_logits=True,
                   return_dict_in_generate=True, temperature=1.3)
    layer_types = []
    real_reserve = generate_module.reserve_decode_room

    def spy(cache, room):
        out = real_reserve(cache, room)
        layer_types.append({type(layer).__name__ for layer in out.layers})
        return out

    monkeypatch.setattr(generate_module, "reserve_decode_room", spy)
    torch.manual_seed(5)
    reserved = generate_module.generate_shared_prefill(model, inputs, 4, **options)
    monkeypatch.setattr(generate_module, "reserve_decode_room", lambda cache, room: cache)
    torch.manual_seed(5)
    plain = generate_module.generate_shared_prefill(model, inputs, 4, **options)
    assert layer_types == [{"ReservedLayer"}]
    assert reserved.sequences.shape[1] - inputs["input_ids"].shape[1] == 12
    assert torch.equal(reserved.sequences, plain.sequences)
    for a, b in zip(plain.logits, reserved.logits, strict=True):
        assert torch.equal(a, b)  # same values, same attention length: bit-identical
