"""Streaming GRPO and its warm start through the shared loop (`trainers/loop.py:Trainer`).

The loop owns what every run shares: the seeded data order (here `StreamClip`s), the run folder
and its protections, accelerate's state, checkpoints every `trainer.save_steps` and
`trainer.resume`, evaluation hooks (`eval_streaming`), metrics.jsonl / wandb and the final
model. The step itself is `StreamingGRPOTrainer.train_step` (GRPO) or `streaming_sft_step` (the
warm start), unchanged: each is handed `LoopUpdate` as its optimizer, so its update is the loop's
(gradient clipping, the non-finite check of `trainer.on_nan`, the prepared optimizer, the LR
scheduler). A step's sampling generator is seeded from (trainer.seed, step, process), so a
resumed run draws the same rollouts as an uninterrupted one.

Several processes: each runs the step on its share of the streams. The step's forwards run on
the unwrapped model (DDP's reducer is never armed), so `LoopUpdate` averages the gradients over
processes itself, in one collective, before clipping: every process then takes the same update.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

import torch

from rewards import RewardSet
from rlvid.models.stream_lm import save_stream_lm, write_stream_lm_meta
from rlvid.policy.stream_vl import QwenVLStream
from rlvid.trainers.checkpoint import COMPLETE, save_final_model, write_hf_files
from rlvid.trainers.loop import NonFiniteError, OptimConfig, Trainer
from rlvid.trainers.streaming_grpo import StreamingGRPOConfig, StreamingGRPOTrainer, streaming_sft_step
from rlvid.trainers.streaming_sft import sft_targets


def step_seed(seed: int, step: int, process: int = 0) -> int:
    """The seed of step `step`'s sampling on `process`: a function of the run seed, the step and the process, so
    resuming changes nothing and processes draw independently."""
    return seed * 100_003 + step + 1_000_003 * process


class LoopUpdate:
    """The optimizer a streaming step is handed: `step()` is the loop's update (see the module docstring)."""

    def __init__(self, trainer: Trainer):
        self.trainer = trainer
        self.samples: Sequence = ()  # the step's clips, saved to bad_steps/ on a non-finite gradient
        self.metrics: dict[str, float] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.trainer.optimizer.zero_grad(set_to_none=True)

    def step(self) -> None:
        t = self.trainer
        params = [p for p in t.model.parameters() if p.requires_grad]
        if t.accelerator.num_processes > 1:
            average_gradients(t.accelerator, params)
        if not all(bool(torch.isfinite(p.grad).all()) for p in params if p.grad is not None):
            path = t.save_bad_samples(t.step, [c.sample for c in self.samples], "non-finite gradient")
            if t.recipe.trainer.on_nan == "raise":
                raise NonFiniteError(f"{t.stage} step {t.step + 1}: non-finite gradient; samples saved to {path}")
            t.optimizer.zero_grad(set_to_none=True)
            self.metrics = {"skipped_nonfinite": 1.0}
            return
        self.metrics = {"skipped_nonfinite": 0.0}
        max_norm = t.optim_config().max_grad_norm
        if max_norm > 0:
            self.metrics["grad_norm"] = float(t.accelerator.clip_grad_norm_(params, max_norm))
        t.optimizer.step()
        t.scheduler.step()


def average_gradients(accelerator, params: list[torch.nn.Parameter]) -> None:
    """Each parameter's gradient replaced by its mean over processes (a missing gradient counts as zeros)."""
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = accelerator.reduce(torch.cat([g.reshape(-1) for g in grads]), reduction="mean")
    start = 0
    for p in params:
        p.grad = flat[start:start + p.numel()].view_as(p).clone()
        start += p.numel()


class StreamingRun(Trainer):
    """What a streaming trainer changes in the loop: its update (`LoopUpdate`) and model folders of the streaming
    LM (stream_lm.json in checkpoints, stream_lm.pt in final/) or of the Qwen-VL model (HF folders)."""

    def __init__(self, recipe, policy, train_samples: Sequence, **kwargs):
        super().__init__(recipe, policy, train_samples, **kwargs)
        self.update = LoopUpdate(self)

    def write_hf_files(self, folder: Path) -> None:
        """stream_lm.json next to the checkpoint's model.safetensors: `load_stream_lm(step-N)` then loads it.
        A Qwen-VL stream's model.safetensors is its HF model's (`QwenVLStream` state dict): config and processor
        next to it make the checkpoint a `from_pretrained` folder."""
        model = self.accelerator.unwrap_model(self.model)
        if isinstance(model, QwenVLStream):
            write_hf_files(model.model, model.processor, folder)
            return
        write_stream_lm_meta(model, folder)

    def save_final(self) -> Path:
        out = self.output_dir / "final"
        model = self.accelerator.unwrap_model(self.model)
        if isinstance(model, QwenVLStream):  # an HF folder (model + processor), as the VL loop's final/
            return save_final_model(self.accelerator, model.model, model.processor, out,
                                    save_merged=self.recipe.model.save_merged)
        if self.accelerator.is_main_process:
            save_stream_lm(self.accelerator.unwrap_model(self.model), out)
            (out / COMPLETE).write_text("ok\n")
        self.accelerator.wait_for_everyone()
        return out


class StreamingGRPOLoopTrainer(StreamingRun):
    """Streaming GRPO: `trainer.global_prompts_per_step` streams per step, `rollout.num_generations` each."""

    stage = "grpo"

    def __init__(self, recipe, policy, train_samples: Sequence, *, config: StreamingGRPOConfig,
                 reward_set: RewardSet, step_rewards: RewardSet | None = None, **kwargs):
        """`step_rewards` (default `reward_set`) are what the step trains on; `reward_set` is what hooks report
        (they differ in the control: every weight negated, `trainer.advantage_sign: -1`)."""
        super().__init__(recipe, policy, train_samples, reward_set=reward_set, **kwargs)
        self.streaming = StreamingGRPOTrainer(policy.model, self.train_samples, step_rewards or reward_set, config)
        self.streaming.optimizer = self.update  # the step's update is the loop's

    @property
    def global_batch_size(self) -> int:
        return self.recipe.trainer.global_prompts_per_step

    def train_step(self, samples: list, step: int) -> dict[str, float]:
        self.streaming.generator.manual_seed(step_seed(self.recipe.trainer.seed, step, self.accelerator.process_index))
        self.update.samples = samples
        metrics = self.streaming.train_step(step, samples)
        return dict(metrics, **self.update.metrics)


class StreamingSFTLoopTrainer(StreamingRun):
    """The streaming warm start: teacher-forced targets that say each answer once, at `streaming.sft_times`."""

    stage = "sft"

    @property
    def global_batch_size(self) -> int:
        return self.recipe.sft.global_samples_per_step

    @property
    def max_steps(self) -> int:
        return self.recipe.sft.steps

    def optim_config(self) -> OptimConfig:
        s, t = self.recipe.sft, self.recipe.trainer
        return OptimConfig(s.lr, s.lr_scheduler, s.warmup_ratio, t.weight_decay, t.max_grad_norm)

    def train_step(self, samples: list, step: int) -> dict[str, float]:
        rng = random.Random(step_seed(self.recipe.trainer.seed, step, self.accelerator.process_index))
        model = self.policy.model
        trajs = sft_targets(model.vocab, samples, self.policy.chunk_seconds, self.recipe.streaming.sft_times, rng)
        self.update.samples = samples
        model.train()
        loss = streaming_sft_step(model, self.update, trajs)
        return {"loss": loss, **self.update.metrics}
