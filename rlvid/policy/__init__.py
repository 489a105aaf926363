"""The policy layer: the video LLM as every algorithm runs it (`Policy`), and the passes it is made of."""

from rlvid.policy.encode import EncodedPrompt
from rlvid.policy.policy import Policy, PolicyStats, SequenceBatch

__all__ = ["EncodedPrompt", "Policy", "PolicyStats", "SequenceBatch"]
