"""Recipe schema (typed dataclasses) and loading: YAML composition, dotlist overrides, validation."""

from rlvid.config.errors import RecipeError
from rlvid.config.loading import load_recipe, override_recipe, recipe_to_dict, save_recipe
from rlvid.config.schema import (
    DataConfig,
    HookSpec,
    LoggingConfig,
    LoraConfig,
    MdpoConfig,
    ModelConfig,
    OfflineSelection,
    Recipe,
    RewardsConfig,
    RewardSpec,
    RolloutConfig,
    SelectionConfig,
    TrainerConfig,
    VideoConfig,
    VllmConfig,
)
from rlvid.config.validation import validate_recipe

__all__ = [
    "DataConfig",
    "HookSpec",
    "LoggingConfig",
    "LoraConfig",
    "MdpoConfig",
    "ModelConfig",
    "OfflineSelection",
    "Recipe",
    "RecipeError",
    "RewardSpec",
    "RewardsConfig",
    "RolloutConfig",
    "SelectionConfig",
    "TrainerConfig",
    "VideoConfig",
    "VllmConfig",
    "load_recipe",
    "override_recipe",
    "recipe_to_dict",
    "save_recipe",
    "validate_recipe",
]
