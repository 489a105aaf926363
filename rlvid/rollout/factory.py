"""`make_engine`: the recipe's `rollout.engine` name -> a RolloutEngine."""

from __future__ import annotations

from rlvid.data.model_inputs import VideoInputBuilder
from rlvid.rollout.base import RolloutEngine
from rlvid.rollout.hf import HFRolloutEngine

ENGINES = ("hf", "vllm", "vllm-server")


class EngineNotAvailableError(RuntimeError):
    """The recipe names an engine that cannot run here."""


def make_engine(recipe, model, processor, builder: VideoInputBuilder) -> RolloutEngine:
    """The rollout engine the recipe asks for; `model` is the unwrapped policy."""
    name = recipe.rollout.engine
    if name == "hf":
        return HFRolloutEngine(model, builder)
    if name in ("vllm", "vllm-server"):
        raise EngineNotAvailableError(
            f"rollout.engine={name!r} is not built yet (a later release adds it); it will need the vLLM extra: "
            "pip install 'rlvid[vllm]'. Use rollout.engine=hf meanwhile."
        )
    raise EngineNotAvailableError(f"unknown rollout.engine {name!r}; known: {list(ENGINES)}")
