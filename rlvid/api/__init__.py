"""The Python API, in TRL's shape: `GRPOTrainer`, `SFTTrainer` and their configs (docs/python_api.md).

    from rlvid import GRPOConfig, GRPOTrainer
"""

from rlvid.api.config import GRPOConfig, SFTConfig
from rlvid.api.datasets import to_samples
from rlvid.api.trainers import GRPOTrainer, SFTTrainer

__all__ = ["GRPOConfig", "GRPOTrainer", "SFTConfig", "SFTTrainer", "to_samples"]
