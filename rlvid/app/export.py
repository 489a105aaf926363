"""`rlvid export CHECKPOINT OUT [--merge-lora]`: a training checkpoint as an HF model folder.

A full fine-tuning checkpoint (`checkpoints/step-N`) already loads with `from_pretrained` (it holds
config.json and the processor next to accelerate's `model.safetensors`); export copies it into a plain
model folder. A LoRA checkpoint holds the peft-wrapped model's state: export rebuilds the model from
the run's recipe (`model.path` + `model.lora`), loads the checkpoint's weights into it and writes the
adapter (load it with peft) or, with `--merge-lora`, the merged model. The resume files (optimizer,
RNG states) are not copied.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import yaml
from omegaconf import OmegaConf

from rlvid.config import ModelConfig
from rlvid.models.loading import load_policy, load_processor
from rlvid.models.trainable import apply_trainable
from rlvid.trainers.checkpoint import COMPLETE, MODEL_WEIGHTS, is_model_folder, is_peft

RECIPE_FILE = "recipe.yaml"


class ExportError(ValueError):
    """The checkpoint cannot be exported; the message names the folder and what is missing."""


def run_folder_of(checkpoint: Path) -> Path:
    """`RUN/checkpoints/step-N` -> RUN (the folder with the run's recipe.yaml)."""
    return checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent


def checkpoint_model_config(checkpoint: Path) -> ModelConfig:
    """The `model:` section of the recipe the checkpoint's run saved (RUN/recipe.yaml)."""
    recipe = run_folder_of(checkpoint) / RECIPE_FILE
    if not recipe.is_file():
        raise ExportError(f"{checkpoint}: no {RECIPE_FILE} in its run folder {recipe.parent}; export needs the "
                          "recipe the run saved there")
    section = (yaml.safe_load(recipe.read_text()) or {}).get("model") or {}
    merged = OmegaConf.merge(OmegaConf.structured(ModelConfig), section)
    return OmegaConf.to_object(merged)


def check_checkpoint(checkpoint: Path) -> None:
    if not checkpoint.is_dir():
        raise ExportError(f"{checkpoint}: no such checkpoint folder")
    if not (checkpoint / MODEL_WEIGHTS).is_file():
        raise ExportError(f"{checkpoint}: no {MODEL_WEIGHTS} (an FSDP/DeepSpeed sharded checkpoint, or not a "
                          "checkpoint); merge the shards with `accelerate merge-weights` first")
    if not (checkpoint / COMPLETE).is_file():
        raise ExportError(f"{checkpoint}: not a complete checkpoint (no {COMPLETE!r} marker; the save was cut off)")


def export_checkpoint(checkpoint: str | Path, out: str | Path, merge_lora: bool = False) -> Path:
    """Write `checkpoint` as a model folder at `out` (written to a temp folder, then renamed); returns `out`."""
    checkpoint, out = Path(checkpoint), Path(out)
    check_checkpoint(checkpoint)
    if out.resolve() == checkpoint.resolve():
        raise ExportError(f"{out}: the output folder must differ from the checkpoint")
    tmp = out.with_name(f".tmp-{out.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    cfg = checkpoint_model_config(checkpoint)
    if is_model_folder(checkpoint) and not cfg.lora.enabled:
        tmp.mkdir(parents=True)
        for f in checkpoint.iterdir():
            if f.is_file() and not _resume_only(f.name):
                shutil.copy2(f, tmp / f.name)
    else:
        _rebuild(checkpoint, cfg, merge_lora).save_pretrained(tmp)
        load_processor(cfg.path, cfg.trust_remote_code).save_pretrained(tmp)
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return out


def _resume_only(name: str) -> bool:
    return (name in (COMPLETE, "trainer_state.json", "optimizer.bin", "scheduler.bin")
            or name.startswith(("random_states_", "custom_checkpoint_", "optimizer", "sampler")))


def _rebuild(checkpoint: Path, cfg: ModelConfig, merge_lora: bool):
    """The run's model (LoRA-wrapped as in training) with the checkpoint's weights loaded."""
    from safetensors.torch import load_file

    model = apply_trainable(load_policy(cfg, cfg.path), cfg)
    state = load_file(str(checkpoint / MODEL_WEIGHTS))
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = {k for k in missing if k.endswith("lm_head.weight")}  # tied to the embeddings; dropped when saved
    if unexpected or set(missing) - tied:
        raise ExportError(f"{checkpoint}: its weights do not fit the run's model ({cfg.path}, LoRA "
                          f"{'on' if cfg.lora.enabled else 'off'}): {len(set(missing) - tied)} missing, "
                          f"{len(unexpected)} unexpected, e.g. {sorted(set(missing) - tied or set(unexpected))[:2]}")
    if tied and hasattr(model, "tie_weights"):
        model.tie_weights()
    if is_peft(model) and merge_lora:
        return model.merge_and_unload()
    return model
