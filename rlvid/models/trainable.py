"""Which weights train: the full model by default; freeze switches for vision tower, projector, LLM; LoRA.

Module names (Qwen2.5-VL and Qwen3-VL in transformers 5): `model.visual` is the vision tower,
whose `merger` (and Qwen3-VL's `deepstack_merger_list`) is the projector into the LLM;
`model.language_model` + `lm_head` is the LLM.
"""

from __future__ import annotations

import logging

import torch

from rlvid.config.schema import ModelConfig

logger = logging.getLogger("rlvid.models")

PROJECTOR_NAMES = ("merger", "deepstack_merger_list")


def model_parts(model: torch.nn.Module) -> dict[str, list[torch.nn.Parameter]]:
    """Parameters grouped as vision_tower / projector / llm (anything else counts as llm)."""
    parts: dict[str, list[torch.nn.Parameter]] = {"vision_tower": [], "projector": [], "llm": []}
    for name, param in model.named_parameters():
        pieces = name.split(".")
        if "visual" in pieces:
            after = pieces[pieces.index("visual") + 1:]
            parts["projector" if after and after[0] in PROJECTOR_NAMES else "vision_tower"].append(param)
        else:
            parts["llm"].append(param)
    return parts


def apply_trainable(model: torch.nn.Module, cfg: ModelConfig) -> torch.nn.Module:
    """Apply `cfg`'s freeze switches, LoRA and gradient checkpointing; returns the (maybe peft-wrapped) model."""
    if cfg.lora.enabled:
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                          target_modules=list(cfg.lora.target_modules), bias="none")
        model = get_peft_model(model, lora)  # freezes every base weight, adds trainable adapters
    parts = model_parts(model)
    for part, frozen in (("vision_tower", cfg.freeze_vision_tower), ("projector", cfg.freeze_projector),
                         ("llm", cfg.freeze_llm)):
        if frozen:
            for p in parts[part]:
                p.requires_grad_(False)
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if hasattr(model, "enable_input_require_grads"):
            model.enable_input_require_grads()  # frozen embeddings + checkpointing still need grads to flow
    counts = trainable_counts(model)
    if counts["trainable"] == 0:
        raise ValueError("nothing left to train: every parameter is frozen (check model.freeze_* and model.lora)")
    logger.info("trainable parameters: %s", counts)
    return model


def trainable_counts(model: torch.nn.Module) -> dict[str, int]:
    """Trainable / total parameter counts, overall and per part (full sizes also for ZeRO-3-partitioned weights)."""
    out = {"trainable": 0, "total": 0}
    for part, params in model_parts(model).items():
        out[f"{part}_trainable"] = sum(full_numel(p) for p in params if p.requires_grad)
    for p in model.parameters():
        out["total"] += full_numel(p)
        out["trainable"] += full_numel(p) if p.requires_grad else 0
    return out


def full_numel(param: torch.Tensor) -> int:
    """Elements of the whole parameter: a DeepSpeed ZeRO-3 partitioned one holds 0 locally and says `ds_numel`."""
    return int(getattr(param, "ds_numel", param.numel()))
