"""rlvid: RL post-training for video LLMs."""

__version__ = "0.1.0"
