"""The training model's weights, one full tensor at a time, ready to push into vLLM.

`iter_push_weights(model)` yields `(checkpoint_name, full_tensor)` per pushed weight, and
`buckets(...)` groups them into lists of at most `max_bytes`, so the whole model is never
materialised at once:

- plain and DDP parameters are read as they are;
- FSDP2 parameters are DTensors: `full_tensor()` all-gathers one parameter;
- DeepSpeed ZeRO-3 parameters (they carry `ds_id`) are gathered one at a time with
  `deepspeed.zero.GatheredParameters` and copied out before they are re-partitioned;
- LoRA (peft) layers are pushed merged, W + scaling * B @ A, computed per layer from gathered
  tensors, without touching the training weights (merging in place and unmerging would add a
  rounding error to the base weights at every sync).

Gathering is collective under FSDP2 / ZeRO-3: every process must run the same iteration, also
the ones that push nothing (server mode pushes from the main process only).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch

from rlvid.rollout.weight_names import checkpoint_name

DEFAULT_BUCKET_BYTES = 256 * 1024**2


@dataclass
class PushStats:
    """What one push moved, for logs and benchmarks."""

    tensors: int = 0
    bytes: int = 0
    buckets: int = 0
    seconds: float = 0.0


def materialize(param: torch.Tensor) -> torch.Tensor:
    """The full value of a (maybe sharded) parameter as a tensor that stays valid after gathering ends."""
    if hasattr(param, "ds_id"):  # DeepSpeed ZeRO-3 partitioned parameter
        import deepspeed

        with deepspeed.zero.GatheredParameters([param], modifier_rank=None):
            return param.data.detach().clone()
    if hasattr(param, "full_tensor"):  # FSDP2 DTensor
        if param.device.type == "cpu" and torch.cuda.is_available():  # CPU-offloaded shard: gather over NCCL
            param = param.to("cuda")
        return param.full_tensor().detach()
    return param.detach()


def lora_layers(model: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """peft LoRA layers by module name (empty for a model without adapters)."""
    try:
        from peft.tuners.lora import LoraLayer
    except ImportError:  # peft is a core dependency; without it there are no adapters
        return {}
    return {name: m for name, m in model.named_modules() if isinstance(m, LoraLayer)}


def merged_lora_weight(layer: torch.nn.Module, base: torch.Tensor) -> torch.Tensor:
    """`base` (the layer's full base weight) plus the deltas of its active adapters, computed in float32."""
    from peft.tuners.lora import Linear

    if not isinstance(layer, Linear):
        raise NotImplementedError(f"merging a {type(layer).__name__} LoRA layer for vLLM is not supported; "
                                  "target linear layers only (model.lora.target_modules)")
    if getattr(layer, "merged", False) or getattr(layer, "disable_adapters", False):
        return base  # the adapter is already in the base weight, or switched off
    out = base.float()
    for adapter in layer.active_adapters:
        if adapter not in layer.lora_A:
            continue
        if layer.use_dora.get(adapter, False) or getattr(layer, "lora_bias", {}).get(adapter, False):
            raise NotImplementedError("DoRA / lora_bias adapters cannot be merged for vLLM here; use plain LoRA")
        a = materialize(layer.lora_A[adapter].weight).float().to(out.device)
        b = materialize(layer.lora_B[adapter].weight).float().to(out.device)
        delta = b @ a
        if layer.fan_in_fan_out:
            delta = delta.T
        out = out + delta * layer.scaling[adapter]
    return out.to(base.dtype)


def _lora_trainable(layer: torch.nn.Module) -> bool:
    return any(p.requires_grad for n, p in layer.named_parameters() if "lora_" in n)


def layer_unit(name: str, packed: dict[str, list[str]] | None = None) -> str:
    """The vLLM layer a checkpoint tensor belongs to: its module, or its fused group (q/k/v -> qkv_proj).

    vLLM finalises a layer only once all its tensors arrived, so a push that sends one tensor of a
    layer must send all of them: `packed` is the vLLM model's `packed_modules_mapping`.
    """
    module = name.rsplit(".", 1)[0]
    parent, _, leaf = module.rpartition(".")
    for group, members in (packed or {}).items():
        if leaf in members and len(members) > 1:
            return f"{parent}.{group}" if parent else group
    return module


def _pushed_names(model: torch.nn.Module, layers: dict[str, torch.nn.Module], trainable_only: bool,
                  packed: dict[str, list[str]] | None) -> set[str] | None:
    """Checkpoint names to push (None: all): whole vLLM layers holding a weight that can have changed."""
    if not trainable_only:
        return None
    names, changed = {}, set()
    for raw, param in model.named_parameters():
        name = checkpoint_name(raw)
        if name is None:
            continue
        names[name] = layer_unit(name, packed)
        owner = raw.rsplit(".", 1)[0]
        layer = layers.get(owner.removesuffix(".base_layer")) if owner.endswith(".base_layer") else None
        if param.requires_grad or (layer is not None and _lora_trainable(layer)):
            changed.add(names[name])
    return {n for n, unit in names.items() if unit in changed}


def iter_push_weights(model: torch.nn.Module, *, trainable_only: bool = False, dtype: torch.dtype | None = None,
                      packed: dict[str, list[str]] | None = None) -> Iterator[tuple[str, torch.Tensor]]:
    """(checkpoint name, full tensor) for each weight vLLM needs, one gathered parameter at a time.

    `trainable_only` skips weights that cannot have changed since the last push (frozen and not
    under a trained LoRA adapter), except that a layer is always sent whole (`layer_unit`, with the
    vLLM model's fused groups `packed`); a first push or one after vLLM discarded its weights must
    be full. Tied parameters are yielded once (`named_parameters` drops duplicates). `dtype` casts
    each tensor before it leaves (e.g. fp32 master weights pushed into a bf16 engine). Under FSDP2 /
    ZeRO-3 every process iterates alike (gathering is collective).
    """
    layers = lora_layers(model)
    wanted = _pushed_names(model, layers, trainable_only, packed)
    for raw, param in model.named_parameters():
        name = checkpoint_name(raw)
        if name is None or (wanted is not None and name not in wanted):
            continue
        owner = raw.rsplit(".", 1)[0]
        layer = layers.get(owner.removesuffix(".base_layer")) if owner.endswith(".base_layer") else None
        if layer is not None and raw.endswith(".base_layer.weight"):
            tensor = merged_lora_weight(layer, materialize(param))
        else:
            tensor = materialize(param)
        yield name, tensor if dtype is None else tensor.to(dtype)


def buckets(weights: Iterable[tuple[str, torch.Tensor]], max_bytes: int = DEFAULT_BUCKET_BYTES
            ) -> Iterator[list[tuple[str, torch.Tensor]]]:
    """Consecutive groups of at most `max_bytes` (a larger tensor goes alone); `max_bytes <= 0`: one per group."""
    bucket: list[tuple[str, torch.Tensor]] = []
    size = 0
    for name, tensor in weights:
        nbytes = tensor.numel() * tensor.element_size()
        if bucket and (max_bytes <= 0 or size + nbytes > max_bytes):
            yield bucket
            bucket, size = [], 0
        bucket.append((name, tensor))
        size += nbytes
    if bucket:
        yield bucket
