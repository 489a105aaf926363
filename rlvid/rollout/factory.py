"""`make_engine`: the recipe's `rollout.engine` name -> a RolloutEngine.

The vLLM engines are imported only when asked for, so rlvid runs without the `[vllm]` extra; a
recipe naming one without vLLM installed gets `EngineNotAvailableError` naming the extra.
"""

from __future__ import annotations

from rlvid.policy import Policy
from rlvid.rollout.base import RolloutEngine
from rlvid.rollout.hf import HFRolloutEngine
from rlvid.rollout.vllm_import import EngineNotAvailableError

ENGINES = ("hf", "vllm", "vllm-server")

__all__ = ["ENGINES", "EngineNotAvailableError", "make_engine"]


def make_engine(recipe, policy: Policy) -> RolloutEngine:
    """The rollout engine the recipe asks for, sampling from `policy` (the vLLM engines get its weights)."""
    name = recipe.rollout.engine
    if name == "hf":
        return HFRolloutEngine(policy)
    if name == "vllm":
        from rlvid.rollout.vllm_colocate import create_colocate_engine

        return create_colocate_engine(recipe, policy.model, policy.processor, policy.builder)
    if name == "vllm-server":
        from rlvid.rollout.vllm_server import create_server_engine

        return create_server_engine(recipe, policy.model, policy.processor, policy.builder)
    raise EngineNotAvailableError(f"unknown rollout.engine {name!r}; known: {list(ENGINES)}")
