"""`GRPOTrainer` and `SFTTrainer` in TRL's shape, for notebooks and scripts (docs/python_api.md).

    trainer = GRPOTrainer(model="my_model", reward_funcs=[my_reward], train_dataset=rows, args=GRPOConfig(...))
    trainer.train(); trainer.evaluate(); trainer.save_model("out")

Built on the composition root (`rlvid.app.compose`), as `rlvid train` is: the config becomes a recipe,
and the objects given here (a model, a processor, datasets, reward callables) replace what the recipe
names. Run folder, checkpoints, resume and logs are the CLI's (`trainer.output_dir`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rewards import score
from rlvid.api.config import GRPOConfig, SFTConfig, _Config
from rlvid.api.datasets import filter_samples, to_samples
from rlvid.app.compose import Given, grpo_trainer, sft_trainer
from rlvid.config.validation import format_reward_problems
from rlvid.eval.metrics import evaluate_completions
from rlvid.eval.predict import predict
from rlvid.trainers import console
from rlvid.trainers.checkpoint import save_final_model

logger = logging.getLogger("rlvid.api")


def _data_path(data: Any, split: str) -> list[str]:
    """A file/dataset path becomes the recipe's `data.<split>` (an object is turned into samples later)."""
    return [f"data.{split}={json.dumps(str(data))}"] if isinstance(data, (str, Path)) else []


def _objects(data: Any, name: str, recipe) -> list | None:
    """A dataset object as samples, filtered by the recipe's `data.tasks` / `data.max_samples`; None otherwise."""
    if data is None or isinstance(data, (str, Path)):
        return None
    return filter_samples(to_samples(data, name), recipe.data.tasks, recipe.data.max_samples)


def _model_inputs(model: Any) -> tuple[Any, list[str]]:
    """A path names the recipe's `model.path`; a loaded model is used as it is (its `name_or_path` is recorded)."""
    if isinstance(model, (str, Path)):
        return None, [f"model.path={json.dumps(str(model))}"]
    if model is None:
        return None, []
    name = getattr(model, "name_or_path", "") or getattr(getattr(model, "config", None), "_name_or_path", "")
    return model, [f"model.path={json.dumps(str(name))}"] if name else []


class _APITrainer:
    """What both trainers share: build from a config and objects, then train, evaluate, save."""

    CONFIG: type[_Config] = GRPOConfig

    def __init__(self, model: Any = None, args: _Config | None = None, train_dataset: Any = None,
                 eval_dataset: Any = None, processing_class: Any = None, reward_funcs: Any = None):
        self.args = args if args is not None else self.CONFIG()
        if not isinstance(self.args, self.CONFIG):
            raise TypeError(f"args must be a {self.CONFIG.__name__}, got {type(self.args).__name__}")
        model_obj, extra = _model_inputs(model)
        extra += _data_path(train_dataset, "train") + _data_path(eval_dataset, "val")
        self.recipe, self.recipe_dir = self.args.to_recipe(extra)
        train = _objects(train_dataset, "train_dataset", self.recipe)
        val = _objects(eval_dataset, "eval_dataset", self.recipe)
        if reward_funcs is not None and not isinstance(reward_funcs, (list, tuple)):
            reward_funcs = [reward_funcs]
        _check_reward_entries(reward_funcs or [], self.recipe.data.reasoning)
        self.given = Given(model=model_obj, processor=processing_class, train=train, val=val,
                           rewards=list(reward_funcs) if reward_funcs is not None else None)
        self.trainer = self._build()
        self.final: Path | None = None

    def _build(self):
        raise NotImplementedError

    @property
    def model(self):
        """The policy model being trained (unwrapped)."""
        return self.trainer.accelerator.unwrap_model(self.trainer.model)

    @property
    def processing_class(self):
        return self.trainer.processor

    def train(self) -> Path:
        """Train to the configured number of steps (resuming as `trainer.resume` says); returns final/.

        Logging is set up as `rlvid train` sets it (`trainer.log_level`): third-party chatter quieted, log lines
        above the progress bar."""
        console.configure_console(self.recipe.trainer.log_level)
        self.final = self.trainer.fit()
        return self.final

    def evaluate(self, eval_dataset: Any = None, batch_size: int = 8) -> dict[str, float]:
        """Greedy answers on `eval_dataset` (default: the validation samples) scored with the task metrics
        (`eval/<task>/...`) and, when the trainer has rewards, their means (`eval_rewards/<label>`)."""
        samples = self.trainer.val_samples
        if eval_dataset is not None:
            samples = (to_samples(eval_dataset, "eval_dataset") if not isinstance(eval_dataset, (str, Path))
                       else _load_file(self.recipe, eval_dataset))
        if not samples:
            raise ValueError("evaluate() needs samples: pass eval_dataset here or to the trainer")
        policy = self.trainer.policy
        completions = predict(policy, list(samples), batch_size=batch_size,
                              max_new_tokens=self.recipe.rollout.max_new_tokens)
        cfg = self.recipe.trainer
        found = evaluate_completions(completions, samples, convention=cfg.eval_convention, dense=cfg.eval_dense)
        metrics = {f"eval/{k}": v for k, v in found.items()}  # the keys the training run logs
        if self.trainer.reward_set is not None:
            metrics.update(score(self.trainer.reward_set, samples, completions).metrics("eval_rewards"))
        return metrics

    def save_model(self, output_dir: str | Path | None = None) -> Path:
        """The model as a Hugging Face folder with its processor (default: output_dir/final); with LoRA, merged
        weights when `model.save_merged` (then the in-memory adapter is merged too: save last)."""
        out = Path(output_dir) if output_dir is not None else self.trainer.output_dir / "final"
        return save_final_model(self.trainer.accelerator, self.trainer.model, self.trainer.processor, out,
                                save_merged=self.recipe.model.save_merged)


def _check_reward_entries(reward_funcs: Sequence, reasoning: bool) -> None:
    """Recipe-style entries among `reward_funcs` ("format", {"name": "format", "kwargs": ...}) get the recipe's
    check: a `format` reward that contradicts `data.reasoning` would score every completion 0."""
    entries = []
    for i, entry in enumerate(reward_funcs):
        if isinstance(entry, str):
            entries.append((f"reward_funcs[{i}]", entry, {}))
        elif isinstance(entry, dict):
            entries.append((f"reward_funcs[{i}]", entry.get("name"), entry.get("kwargs")))
    problems = [f"{where}: {problem}" for where, problem in format_reward_problems(entries, reasoning)]
    if problems:
        raise ValueError("; ".join(problems))


def _load_file(recipe, path: str | Path) -> list:
    from rlvid.data.loaders import load_samples

    data = recipe.data
    result = load_samples(str(path), split="eval", skip_bad_samples=data.skip_bad_samples,
                          check_videos=data.check_videos, check_video_files=data.check_video_files)
    return filter_samples(list(result.samples), data.tasks, data.max_samples)


class GRPOTrainer(_APITrainer):
    """GRPO: `GRPOTrainer(model, reward_funcs, args=GRPOConfig(...), train_dataset=..., eval_dataset=...)`.

    `model`: a model folder / hub id, or a loaded image-text-to-text model (pass `processing_class` unless its
    `name_or_path` is a folder with a processor). `reward_funcs`: a callable, a recipe entry
    (`"accuracy"`, `{"name": "temporal_iou", "kwargs": {...}}`) or a list of them; None = the recipe's.
    A callable is called as TRL calls one (rewards/README.md). Datasets: a path (JSONL or HF dataset), a list of
    Samples or dicts, or a `datasets.Dataset`; None = the recipe's `data.train` / `data.val`.
    """

    CONFIG = GRPOConfig

    def __init__(self, model: Any = None, reward_funcs: Callable | Sequence | None = None,
                 args: GRPOConfig | None = None, train_dataset: Any = None, eval_dataset: Any = None,
                 processing_class: Any = None):
        super().__init__(model, args, train_dataset, eval_dataset, processing_class, reward_funcs)

    def _build(self):
        if self.recipe.sft.steps > 0:
            logger.warning("the recipe sets sft.steps=%d: GRPOTrainer does not run an SFT warm start (`rlvid train` "
                           "does); train an SFTTrainer first and pass its final/ folder as model",
                           self.recipe.sft.steps)
        return grpo_trainer(self.recipe, self.recipe_dir, given=self.given)


class SFTTrainer(_APITrainer):
    """SFT on the ground-truth answers: `SFTTrainer(model, args=SFTConfig(...), train_dataset=...)`."""

    CONFIG = SFTConfig

    def __init__(self, model: Any = None, args: SFTConfig | None = None, train_dataset: Any = None,
                 eval_dataset: Any = None, processing_class: Any = None, reward_funcs: Any = None):
        super().__init__(model, args, train_dataset, eval_dataset, processing_class, reward_funcs)

    def _build(self):
        return sft_trainer(self.recipe, self.recipe_dir, given=self.given)
