"""TRL-style configs (`GRPOConfig`, `SFTConfig`): a recipe file and/or keyword arguments, as one `Recipe`.

The recipe is the one description of a run; these configs only say which recipe (a file, or the schema's
defaults) and which keys to change, by TRL's names (`learning_rate`, `max_steps`, `num_generations`,
`max_completion_length`, ...) or by recipe keys (`overrides={"trainer.lr": 1e-5}`). Every value is
type-checked and validated as a command-line override is, so a typo fails here, naming the key.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from rlvid.config import Recipe, RecipeError, load_recipe, override_recipe

# TRL argument -> recipe key, shared by both configs (the step-shaped ones differ: see each config's TRL_KEYS).
_COMMON = {"output_dir": "trainer.output_dir", "seed": "trainer.seed", "save_steps": "trainer.save_steps",
           "eval_steps": "trainer.eval_steps", "logging_steps": "trainer.logging_steps"}
_REPORT_TO = {"wandb": "offline", "none": "disabled", None: None}


@dataclass
class _Config:
    """What both configs hold; subclasses add their TRL-named fields and `TRL_KEYS`."""

    TRL_KEYS: ClassVar[dict[str, str]] = {}
    ALGORITHM: ClassVar[str] = "grpo"

    output_dir: str | None = None
    recipe: str | Path | Recipe | None = None  # a recipe file (or a loaded Recipe); None = the schema's defaults
    overrides: Mapping[str, Any] | Sequence[str] = field(default_factory=dict)  # recipe keys: {"trainer.lr": 1e-5}
    seed: int | None = None
    save_steps: int | None = None
    eval_steps: int | None = None
    logging_steps: int | None = None
    report_to: str | None = None  # "wandb" (offline unless the recipe says online) or "none"

    def recipe_overrides(self) -> list[str]:
        """Every change to the base recipe as `key=value` strings (values as JSON, which YAML reads)."""
        out = [f"trainer.algorithm={self.ALGORITHM}"]
        for name, key in {**_COMMON, **self.TRL_KEYS}.items():
            value = getattr(self, name)
            if value is not None:
                out.append(f"{key}={json.dumps(str(value) if isinstance(value, Path) else value)}")
        if self.report_to not in _REPORT_TO:
            raise RecipeError(f"{type(self).__name__}.report_to is {self.report_to!r}; allowed: 'wandb', 'none'")
        if self.report_to == "none":
            out.append("logging.wandb=disabled")
        if isinstance(self.overrides, Mapping):
            out += [f"{k}={json.dumps(v)}" for k, v in self.overrides.items()]
        else:
            out += list(self.overrides)
        return out

    def to_recipe(self, extra: Sequence[str] = ()) -> tuple[Recipe, Path]:
        """The run's recipe and the folder its relative plugin paths resolve from (the recipe file's, else the
        working folder). `extra` overrides come last (the trainer's model and dataset paths)."""
        overrides = [*self.recipe_overrides(), *extra]
        if self.recipe is None or isinstance(self.recipe, Recipe):
            here = Path.cwd()
            return override_recipe(self.recipe or Recipe(), overrides, source=type(self).__name__, base_dir=here), here
        path = Path(self.recipe)
        return load_recipe(path, overrides), path.resolve().parent


@dataclass
class GRPOConfig(_Config):
    """GRPO settings by TRL's names; anything else through `recipe` or `overrides` (recipes/README.md)."""

    TRL_KEYS: ClassVar[dict[str, str]] = {
        "learning_rate": "trainer.lr", "max_steps": "trainer.max_steps", "num_generations": "rollout.num_generations",
        "max_completion_length": "rollout.max_new_tokens", "temperature": "rollout.temperature",
        "beta": "trainer.beta", "prompts_per_step": "trainer.global_prompts_per_step",
        "per_device_train_batch_size": "trainer.micro_batch_size_per_device"}
    ALGORITHM: ClassVar[str] = "grpo"

    learning_rate: float | None = None
    max_steps: int | None = None
    num_generations: int | None = None
    max_completion_length: int | None = None
    temperature: float | None = None
    beta: float | None = None
    prompts_per_step: int | None = None  # prompts per optimizer step, all processes (TRL counts completions)
    per_device_train_batch_size: int | None = None  # rows per forward (micro batch); not a step's size


@dataclass
class SFTConfig(_Config):
    """SFT settings by TRL's names (the `sft.*` section of a recipe)."""

    TRL_KEYS: ClassVar[dict[str, str]] = {
        "learning_rate": "sft.lr", "max_steps": "sft.steps", "samples_per_step": "sft.global_samples_per_step",
        "per_device_train_batch_size": "trainer.micro_batch_size_per_device"}
    ALGORITHM: ClassVar[str] = "sft"

    learning_rate: float | None = None
    max_steps: int | None = None
    samples_per_step: int | None = None
    per_device_train_batch_size: int | None = None
