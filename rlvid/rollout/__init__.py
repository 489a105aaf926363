"""Rollout engines: sample G completions per prompt (hf; vllm colocated and vllm-server, imported lazily)."""

from rlvid.rollout.base import RolloutEngine, Rollouts, SamplingParams
from rlvid.rollout.factory import ENGINES, EngineNotAvailableError, make_engine
from rlvid.rollout.hf import HFRolloutEngine, strip_after_eos

__all__ = [
    "ENGINES",
    "EngineNotAvailableError",
    "HFRolloutEngine",
    "RolloutEngine",
    "Rollouts",
    "SamplingParams",
    "make_engine",
    "strip_after_eos",
]
