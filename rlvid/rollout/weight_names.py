"""Parameter names between a training model (transformers, maybe wrapped) and vLLM.

Weights are pushed under their *checkpoint* names (what `save_pretrained` writes, e.g.
`model.language_model.layers.0.self_attn.q_proj.weight`): that is what vLLM's `load_weights` and
the server's weight-transfer endpoint take, and vLLM renames them itself with the model class's
`hf_to_vllm_mapper`. Two steps are checked here rather than assumed:

1. `checkpoint_name` strips what wrappers add to `named_parameters()` names: DDP / DeepSpeed
   `module.`, torch.compile `_orig_mod.`, FSDP1 / activation-checkpointing wrappers, peft's
   `base_model.model.` and `.base_layer`, and `modules_to_save`; LoRA's own tensors are dropped
   (they are merged into the base weights before the push).
2. `check_vllm_names` applies the prefix table of vLLM's mapper for the architecture (copied from
   vLLM 0.25.0 and 0.31.0, where they are identical: `Qwen2_5_VLForConditionalGeneration` and
   `Qwen3VLForConditionalGeneration`, `hf_to_vllm_mapper.orig_to_new_prefix`, applied in order
   like `WeightsMapper`) and raises, listing them, for names that would land outside vLLM's
   `language_model.` / `visual.` modules. The colocated engine also checks, on its first push,
   that every vLLM parameter was loaded (`missing_vllm_params`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

VLLM_PREFIX_MAPS: dict[str, tuple[tuple[str, str], ...]] = {
    "Qwen2_5_VLForConditionalGeneration": (
        ("model.language_model.", "language_model.model."),
        ("model.visual.", "visual."),
        ("lm_head.", "language_model.lm_head."),
        ("model.", "language_model.model."),
    ),
    "Qwen3VLForConditionalGeneration": (
        ("model.visual.", "visual."),
        ("lm_head.", "language_model.lm_head."),
        ("model.language_model.", "language_model.model."),
    ),
}
VLLM_TOP_MODULES = ("language_model.model.", "language_model.lm_head.", "visual.")

_WRAPPER_SEGMENTS = ("_orig_mod.", "_fsdp_wrapped_module.", "_checkpoint_wrapped_module.")
_MODULES_TO_SAVE = re.compile(r"\.modules_to_save\.[^.]+\.")


class WeightNameError(ValueError):
    """Training parameter names that vLLM would not know."""


def checkpoint_name(name: str) -> str | None:
    """The checkpoint name of a (maybe wrapped) training parameter; None for tensors not pushed (LoRA A/B)."""
    while name.startswith("module."):
        name = name[len("module."):]
    for segment in _WRAPPER_SEGMENTS:
        name = name.replace(segment, "")
    name = name.removeprefix("base_model.model.")
    pieces = name.split(".")
    if "original_module" in pieces or any(p.startswith("lora_") for p in pieces):
        return None
    name = _MODULES_TO_SAVE.sub(".", name)
    return name.replace(".base_layer.", ".")


def vllm_name(name: str, architecture: str) -> str:
    """`name` as vLLM's mapper for `architecture` renames it (prefix rules applied in order, like WeightsMapper)."""
    for old, new in VLLM_PREFIX_MAPS[architecture]:
        if name.startswith(old):
            name = new + name[len(old):]
    return name


def check_vllm_names(names: Iterable[str], architecture: str | None) -> dict[str, str]:
    """checkpoint name -> vLLM name for `names`; WeightNameError listing the names vLLM would not place.

    Architectures without a table are not checked here (the engine's load-coverage check still runs).
    """
    names = list(names)
    if architecture not in VLLM_PREFIX_MAPS:
        return {n: n for n in names}
    mapped = {n: vllm_name(n, architecture) for n in names}
    bad = sorted(n for n, m in mapped.items() if not m.startswith(VLLM_TOP_MODULES))
    if bad:
        shown = ", ".join(bad[:20]) + (f", ... ({len(bad)} in all)" if len(bad) > 20 else "")
        raise WeightNameError(
            f"{len(bad)} parameter name(s) of the training model have no place in vLLM's {architecture} "
            f"(known prefixes: {[old for old, _ in VLLM_PREFIX_MAPS[architecture]]}): {shown}"
        )
    return mapped


def model_architecture(model) -> str | None:
    """The transformers architecture name (e.g. Qwen2_5_VLForConditionalGeneration), through peft wrappers."""
    config = getattr(model, "config", None)
    archs = getattr(config, "architectures", None) or []
    if archs:
        return archs[0]
    base = getattr(model, "get_base_model", None)
    inner = base() if callable(base) else model
    return type(inner).__name__


def missing_vllm_params(loaded: Iterable[str], vllm_params: Iterable[str]) -> list[str]:
    """vLLM parameters that a full push did not write (they would keep stale weights)."""
    return sorted(set(vllm_params) - set(loaded))
