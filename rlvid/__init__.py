"""rlvid: RL post-training for video LLMs."""

from rlvid import own_imports

__version__ = "0.1.0"

own_imports.install()  # `rewards` / `data_selection` are rlvid's own, whatever a user's working folder holds
