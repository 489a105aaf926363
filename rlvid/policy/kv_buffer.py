"""A KV cache that writes new tokens into room reserved up front, instead of re-concatenating every token.

transformers' `DynamicLayer.update` does `torch.cat([keys, new], -2)` per layer per decoded token, which copies
the whole cache each time (O(length) per token, 17% of the mid model's CPU decode). `reserve_decode_room`
swaps each layer of a prefilled `DynamicCache` for a `ReservedLayer`: the prefix is copied once into a buffer
with `room` more slots, each token is written in place, and attention gets a view of the filled part. The
values and the attention's length are the ones the plain cache gives, so decoding samples the same tokens
(tests/test_policy_kv_buffer.py). transformers' `StaticCache` also avoids the copy, but it attends over the
whole reserved length with a mask, which is slower on CPU (docs/benchmarks.md, "Decode phase").
"""

from __future__ import annotations

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer


class ReservedLayer(DynamicLayer):
    """A `DynamicLayer` whose keys / values live in a buffer with `room` free slots after the prefix.

    Past the reserved room it falls back to concatenation (still correct, just the plain cost).
    """

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, room: int):
        super().__init__()
        b, h, n, _ = keys.shape
        self._key_buffer = keys.new_empty(b, h, n + room, keys.shape[-1])
        self._value_buffer = values.new_empty(b, h, n + room, values.shape[-1])
        self._key_buffer[:, :, :n].copy_(keys)
        self._value_buffer[:, :, :n].copy_(values)
        self._filled = n
        self.dtype, self.device = keys.dtype, keys.device
        self.keys, self.values = self._key_buffer[:, :, :n], self._value_buffer[:, :, :n]
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs
               ) -> tuple[torch.Tensor, torch.Tensor]:
        start, end = self._filled, self._filled + key_states.shape[-2]
        if start < 0 or end > self._key_buffer.shape[2] or key_states.shape[0] != self._key_buffer.shape[0]:
            self._filled = -1  # out of room (or rows changed): the plain concatenation from here on
            return super().update(key_states, value_states)
        self._key_buffer[:, :, start:end].copy_(key_states)
        self._value_buffer[:, :, start:end].copy_(value_states)
        self._filled = end
        self.keys, self.values = self._key_buffer[:, :, :end], self._value_buffer[:, :, :end]
        return self.keys, self.values

    def _drop_buffer(self) -> None:
        """After an operation that replaces `keys` / `values` (reorder, crop, select), stop writing in place."""
        self._filled = -1
        self._key_buffer = self._key_buffer[:0, :, :0]
        self._value_buffer = self._value_buffer[:0, :, :0]

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        super().reorder_cache(beam_idx)
        self._drop_buffer()

    def crop(self, tokens_to_remove: int) -> None:
        super().crop(tokens_to_remove)
        self._drop_buffer()

    def batch_repeat_interleave(self, repeats: int) -> None:
        super().batch_repeat_interleave(repeats)
        self._drop_buffer()

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        super().batch_select_indices(indices)
        self._drop_buffer()


def reserve_decode_room(cache, room: int):
    """`cache` with each plain full-attention layer moved into a buffer with `room` more token slots (in place).

    Layers of any other kind (sliding window, linear attention, ...) and caches that are not a `DynamicCache`
    are left as they are.
    """
    if not isinstance(cache, DynamicCache) or room <= 0:
        return cache
    cache.layers = [ReservedLayer(layer.keys, layer.values, room)
                    if type(layer) is DynamicLayer and layer.is_initialized and layer.keys.numel() else layer
                    for layer in cache.layers]
    return cache
