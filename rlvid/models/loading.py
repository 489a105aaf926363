"""Load the policy (or reference) model and its processor as a recipe describes them."""

from __future__ import annotations

import contextlib
import logging
import os

import torch

from rlvid.config.errors import RecipeError
from rlvid.config.recipe_paths import check_model_path
from rlvid.config.schema import ModelConfig
from rlvid.models.qwen2_5_vl_positions import use_reference_positions

logger = logging.getLogger("rlvid.models")

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def resolve_dtype(name: str, device: torch.device | str | None = None) -> torch.dtype:
    """`auto` is bf16 on an accelerator and fp32 on CPU (CPU bf16 matmuls are slow and inexact)."""
    if name != "auto":
        return DTYPES[name]
    device = torch.device(device) if device is not None else None
    on_gpu = device.type == "cuda" if device is not None else torch.cuda.is_available()
    return torch.bfloat16 if on_gpu else torch.float32


def load_policy(model_cfg: ModelConfig, path: str | None = None, device: torch.device | str | None = None):
    """The image-text-to-text model at `path` (default: the recipe's `model.path`)."""
    from transformers import AutoModelForImageTextToText

    path = path or model_cfg.path
    if not path:
        raise ValueError("recipe key 'model.path' is empty: name a model folder or hub id")
    check_model_path(path)  # a missing local folder is named as such, not as a malformed Hub id
    with hub_errors_named(path):
        model = AutoModelForImageTextToText.from_pretrained(
            path, dtype=resolve_dtype(model_cfg.dtype, device), attn_implementation=model_cfg.attn_implementation,
            trust_remote_code=remote_code_allowed(model_cfg.trust_remote_code, path),
        )
    if device is not None:
        model.to(device)
    return use_reference_positions(model)  # Qwen2.5-VL: the positions it was trained with (and vLLM uses)


def remote_code_allowed(trust_remote_code: bool, path: str) -> bool:
    """`trust_remote_code` exactly as the recipe says (off by default), with a warning when it is on."""
    if trust_remote_code:
        logger.warning("model.trust_remote_code is on: Python files shipped with %s will run in this process "
                       "(docs/security.md)", path)
    return bool(trust_remote_code)


def load_processor(path: str, trust_remote_code: bool = False):
    """The model's processor (tokenizer, image and video processors, chat template); remote code only if asked."""
    from transformers import AutoProcessor

    check_model_path(path)
    with hub_errors_named(path):
        return AutoProcessor.from_pretrained(path, trust_remote_code=remote_code_allowed(trust_remote_code, path))


@contextlib.contextmanager
def hub_errors_named(path: str):
    """A name that is no local folder and that the Hub cannot provide (offline, unknown, private) becomes one
    RecipeError saying both, instead of transformers' traceback."""
    try:
        yield
    except OSError as error:
        if os.path.isdir(os.path.expanduser(path)):
            raise  # a broken local folder: transformers' own message names the file
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise RecipeError(f"model {path!r}: no such local folder ({os.path.abspath(os.path.expanduser(path))}) "
                          f"and not loadable as a Hub name: {first}") from error
