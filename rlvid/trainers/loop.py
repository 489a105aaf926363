"""The loop pieces every trainer shares (GRPO, SFT, M-DPO): one idea each, no copies.

`Trainer.fit()` owns what is the same for every algorithm: the data order (a function of seed
and epoch, so a resumed run sees the same batches), the per-process shard of each step's
samples, logging, evaluation hooks, checkpoints and the final model. A trainer is handed its
collaborators (the `Policy`, the samples, rewards, hooks; `rlvid.app.compose` builds them from a
recipe) and builds only its optimizer. A subclass implements `train_step(samples, step) ->
metrics`, written as the algorithm reads, timing its phases with `self.timer`, and uses
`accumulate_and_step` for the exact gradient-accumulation contract of `rlvid.algos.aggregation`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import gather_object

from data_selection.sampler import selection_weights, weighted_sampler
from rewards import RewardSet
from rlvid.config import save_recipe
from rlvid.eval.table import format_eval_table
from rlvid.models.trainable import trainable_counts
from rlvid.plugins import write_plugin_record
from rlvid.policy import Policy
from rlvid.redact import scrub
from rlvid.timing import PhaseTimer
from rlvid.trainers import console
from rlvid.trainers.bad_samples import BadSampleGuard
from rlvid.trainers.checkpoint import (
    load_checkpoint,
    resolve_resume,
    save_checkpoint,
    save_final_model,
    write_hf_files,
)
from rlvid.trainers.deepspeed_setup import (
    check_cpu_deepspeed_launch,
    fill_deepspeed_batch_config,
    launched_with_deepspeed,
    uses_deepspeed,
)
from rlvid.trainers.hooks import HookRunner
from rlvid.trainers.logging import RunLogger
from rlvid.trainers.precision import launcher_precision, resolve_precision
from rlvid.trainers.run_folder import (
    METRICS_FILE,
    check_run_folder,
    claim_run_folder,
    fingerprint,
    read_run_file,
    reconcile_metrics,
    update_run_file,
)
from rlvid.trainers.signal_checks import SignalMonitor
from rlvid.trainers.signals import RunInterrupted, StopRequest
from rlvid.trainers.watchdog import PhaseWatchdog

logger = logging.getLogger("rlvid.trainers")


class NonFiniteError(FloatingPointError):
    """A NaN/inf loss or reward; the message names the step and where the offending samples were saved."""


@dataclass
class OptimConfig:
    """What the optimizer/scheduler need; GRPO takes it from `trainer.*`, SFT from `sft.*`."""

    lr: float
    lr_scheduler: str
    warmup_ratio: float
    weight_decay: float
    max_grad_norm: float


def make_accelerator(recipe) -> Accelerator:
    """One Accelerator per process; its mixed precision from `trainer.precision` and the launcher's
    (rlvid/trainers/precision.py: an explicit setting wins, `auto` follows the launcher on GPU, fp32 on CPU).

    Collectives time out after `trainer.collective_timeout_s` (passed to the process group), so a stalled
    rank ends the job with torch's error naming the collective instead of waiting forever."""
    from datetime import timedelta

    from accelerate.utils import InitProcessGroupKwargs

    precision, warning = resolve_precision(recipe.trainer.precision, launcher_precision(), torch.cuda.is_available())
    if warning and int(os.environ.get("RANK", "0")) == 0:
        logger.warning(warning)
    timeout = InitProcessGroupKwargs(timeout=timedelta(seconds=recipe.trainer.collective_timeout_s))
    # cpu=True is what makes accelerate read torchrun's ranks on a CPU-only machine (MULTI_CPU over gloo); it would
    # also make accelerate ignore a DeepSpeed launch, which runs on DeepSpeed's CPU accelerator there
    check_cpu_deepspeed_launch(torch.cuda.is_available())
    cpu = not torch.cuda.is_available() and not launched_with_deepspeed()
    return Accelerator(mixed_precision=precision, cpu=cpu, kwargs_handlers=[timeout])


def make_optimizer_and_scheduler(model: torch.nn.Module, cfg: OptimConfig, total_updates: int):
    """AdamW over trainable parameters and transformers' scheduler (warm-up as a share of updates)."""
    from transformers import get_scheduler

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    warmup = int(math.ceil(cfg.warmup_ratio * total_updates))
    scheduler = get_scheduler(cfg.lr_scheduler, optimizer, num_warmup_steps=warmup,
                              num_training_steps=max(total_updates, 1))
    return optimizer, scheduler


def micro_batches(n: int, size: int) -> list[range]:
    """Row ranges of at most `size` rows covering 0..n-1 (G > size is split, never refused)."""
    return [range(i, min(i + size, n)) for i in range(0, n, max(size, 1))]


def reduce_sum(accelerator: Accelerator, value: float | torch.Tensor) -> torch.Tensor:
    """Sum of a scalar over all processes (a float64 tensor on this process's device)."""
    t = torch.as_tensor(value, dtype=torch.float64, device=accelerator.device).reshape(1)
    return accelerator.reduce(t, reduction="sum")[0] if accelerator.num_processes > 1 else t[0]


def mean_over_processes(accelerator: Accelerator, metrics: dict[str, float]) -> dict[str, float]:
    """Each metric averaged over processes (keys missing on a process are averaged over those that have it)."""
    if accelerator.num_processes == 1:
        return metrics
    gathered = gather_object([metrics])
    keys = sorted({k for m in gathered for k in m})
    out = {}
    for k in keys:
        vals = [m[k] for m in gathered if k in m]
        out[k] = sum(vals) / len(vals)
    return out


class Trainer:
    """Shared training run. Subclasses set `stage` and implement `global_batch_size` and `train_step`."""

    stage = "train"

    def __init__(self, recipe, policy: Policy, train_samples: Sequence, *, val_samples: Sequence = (),
                 reward_set: RewardSet | None = None, hooks: HookRunner | None = None,
                 accelerator: Accelerator | None = None, output_dir: str | Path | None = None):
        """`policy` holds the (trainable) model; the trainer builds the optimizer over its parameters and
        prepares both with `accelerator` (default: one from the recipe). `train_samples` are what a step
        draws (prompts; pairs for M-DPO)."""
        self.recipe = recipe
        self.output_dir = Path(output_dir or recipe.trainer.output_dir)
        self.accelerator = accelerator or make_accelerator(recipe)
        self.policy = policy
        self.train_samples = list(train_samples)
        self.sample_weights = (selection_weights(self.train_samples) if recipe.selection.weighted_sampling
                               else None)
        self.val_samples = list(val_samples)
        self.reward_set = reward_set
        self.hooks = hooks if hooks is not None else HookRunner([], recipe)
        if self.hooks.hooks and not self.val_samples:
            raise ValueError("recipe has evaluation hooks but no data.val split to evaluate on")
        self._check_batch_sizes()
        self.optimizer, self.scheduler = make_optimizer_and_scheduler(
            policy.model, self.optim_config(), self.total_steps * self.updates_per_step)
        fill_deepspeed_batch_config(self.accelerator, recipe.trainer.micro_batch_size_per_device,
                                    self.micro_batches_per_update, self.optim_config().max_grad_norm)
        self.model, self.optimizer = self.accelerator.prepare(policy.model, self.optimizer)
        policy.wrap(self.model)
        self.accelerator.register_for_checkpointing(self.scheduler)
        self.timer = PhaseTimer()
        self.step = 0
        self.recent_completions: list[dict] = []  # sample completions a step keeps for trainer.log_completions

    @property
    def processor(self):
        return self.policy.processor

    @property
    def builder(self):
        return self.policy.builder

    # ---------------------------------------------------------- what a subclass provides

    @property
    def global_batch_size(self) -> int:
        """Samples (prompts) per optimizer step over all processes."""
        raise NotImplementedError

    def optim_config(self) -> OptimConfig:
        t = self.recipe.trainer
        return OptimConfig(t.lr, t.lr_scheduler, t.warmup_ratio, t.weight_decay, t.max_grad_norm)

    @property
    def updates_per_step(self) -> int:
        return 1

    @property
    def micro_batches_per_update(self) -> int:
        """Micro-batches one process runs per optimizer update (DeepSpeed's gradient_accumulation_steps)."""
        per_process = self.global_batch_size // self.accelerator.num_processes
        return max(1, math.ceil(per_process / self.recipe.trainer.micro_batch_size_per_device))

    @property
    def max_steps(self) -> int:
        return self.recipe.trainer.max_steps

    def train_step(self, samples: list, step: int) -> dict[str, float]:
        raise NotImplementedError

    # ---------------------------------------------------------- data order

    def _check_batch_sizes(self) -> None:
        world = self.accelerator.num_processes
        if self.global_batch_size % world:
            raise ValueError(f"{self.stage}: {self.global_batch_size} samples per step do not split over {world} "
                             "processes; make it a multiple of the number of processes")
        if len(self.train_samples) < self.global_batch_size:
            raise ValueError(f"{self.stage}: the train split has {len(self.train_samples)} samples, fewer than "
                             f"the {self.global_batch_size} one step needs")

    @property
    def steps_per_epoch(self) -> int:
        return len(self.train_samples) // self.global_batch_size

    @property
    def total_steps(self) -> int:
        return self.max_steps if self.max_steps > 0 else self.recipe.trainer.epochs * self.steps_per_epoch

    def epoch_of(self, step: int) -> int:
        return step // self.steps_per_epoch

    def batch_indices(self, step: int) -> list[int]:
        """Indices into the train split of step `step` (all processes): a seeded per-epoch permutation, or
        draws by the samples' selection weights when they carry them (`selection.weighted_sampling`)."""
        epoch, pos = divmod(step, self.steps_per_epoch)
        seed = self.recipe.trainer.seed
        if self.sample_weights is not None:
            order = list(weighted_sampler(self.sample_weights, seed, epoch))
        else:
            gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
            order = torch.randperm(len(self.train_samples), generator=gen).tolist()
        return order[pos * self.global_batch_size:(pos + 1) * self.global_batch_size]

    def local_batch(self, step: int) -> list:
        """This process's contiguous share of the step's samples (so GRPO groups stay whole locally)."""
        idx = self.batch_indices(step)
        per = len(idx) // self.accelerator.num_processes
        rank = self.accelerator.process_index
        return [self.train_samples[i] for i in idx[rank * per:(rank + 1) * per]]

    # ---------------------------------------------------------- the loop

    def fit(self) -> Path:
        """Train to `total_steps`, checkpointing, then evaluating, then logging; returns the final model folder.

        The run folder is claimed first (`run_folder`: a second run is refused, a changed resume too); on
        SIGTERM/SIGINT the current step finishes, a checkpoint is saved and `RunInterrupted` is raised.
        """
        acc = self.accelerator
        resume = resolve_resume(self.recipe.trainer.resume, self.output_dir)
        run = self.claim_output_dir(resume is not None)
        if resume is not None:
            self.step = load_checkpoint(acc, resume)["step"]
            logger.info("resumed from %s at step %d", resume, self.step)
        if acc.is_main_process:
            dropped = reconcile_metrics(self.output_dir / METRICS_FILE, self.step if self.step > 0 else -1)
            if dropped:
                logger.info("%s: dropped %d row(s) after the resumed step %d (or torn)",
                            self.output_dir / METRICS_FILE, dropped, self.step)
        run_log = RunLogger(self.recipe, self.output_dir, self.total_steps, self.step, acc.is_main_process,
                            self.stage, wandb_id=run.get("wandb_id"))
        if self.step == 0 and acc.is_main_process:
            run_log.log({f"params/{k}": v for k, v in trainable_counts(acc.unwrap_model(self.model)).items()},
                        0, advance=False)
        watchdog = PhaseWatchdog(self.timer, self.recipe.trainer.phase_warn_factor)
        guard = BadSampleGuard(self.recipe, self.policy.tokenizer, self.output_dir, acc.process_index)
        monitor = SignalMonitor()
        started = time.perf_counter()
        try:
            with StopRequest() as stop, watchdog:
                if self.step == 0 and self.recipe.trainer.eval_on_start:
                    self.maybe_evaluate(run_log, force=True)  # the step-0 baseline
                while self.step < self.total_steps:
                    step = self.step
                    self.timer.reset()
                    skipped_before = guard.skipped
                    with self.timer("data"):
                        samples = guard.screen(self.local_batch(step), step)
                    with self.timer("step"):
                        try:
                            metrics = self.train_step(samples, step)
                        except Exception as e:  # say where: a stalled rank's timeout names its collective only
                            logger.error("process %d: step %d failed in phase %r: %s: %s", acc.process_index,
                                         step + 1, self.timer.failed_in, type(e).__name__, str(e)[:500])
                            raise
                    self.step = step + 1
                    watchdog.record(self.step, dict(self.timer.seconds))
                    metrics["data/skipped_samples"] = float(guard.skipped - skipped_before)
                    metrics.update(self.timer.metrics())
                    metrics.update({"lr": self.scheduler.get_last_lr()[0], "epoch": step / self.steps_per_epoch})
                    metrics = mean_over_processes(acc, metrics)
                    if acc.is_main_process:
                        for message in monitor.check(metrics, self.step):
                            logger.warning(message)
                    if self.step % self.recipe.trainer.logging_steps == 0 or self.step == self.total_steps:
                        run_log.log(metrics, self.step)
                        run_log.log_completions(self.recent_completions, self.step)
                    saved = self.maybe_save()
                    stopping = reduce_max(acc, float(stop.signum or 0))
                    if not stopping:
                        if self.reached_stop_when(self.maybe_evaluate(run_log)):
                            break
                    else:
                        self.stop_after_signal(int(stopping), saved)
        finally:
            self.run_seconds = time.perf_counter() - started
            run_log.close()
            if guard.skipped:
                logger.warning("%d bad sample(s) skipped on process %d during this run (data.skip_bad_samples); "
                               "see %s", guard.skipped, acc.process_index, self.output_dir / "bad_steps")
        return self.save_final()

    def claim_output_dir(self, resuming: bool) -> dict:
        """Check that output_dir is this run's (every process), then record the run there (main process)."""
        acc = self.accelerator
        current = fingerprint(self.recipe, self.stage, acc.num_processes)
        check_run_folder(self.output_dir, self.recipe, resuming, current)
        acc.wait_for_everyone()
        if acc.is_main_process:
            record = claim_run_folder(self.output_dir, self.recipe, current)
            if "wandb_id" not in record:
                update_run_file(self.output_dir, wandb_id=uuid.uuid4().hex[:12])
            save_recipe(self.recipe, self.output_dir / "recipe.yaml")
            write_plugin_record(self.output_dir / "plugins.json")  # which recipe-named code this run executes
        acc.wait_for_everyone()
        return read_run_file(self.output_dir)

    def stop_after_signal(self, signum: int, saved: Path | None) -> None:
        """Save (unless this step was just saved), say where and how to resume, and exit non-zero."""
        path = saved or self.save_now()
        name = signal.Signals(signum).name if signum in signal.Signals._value2member_map_ else str(signum)
        message = (f"rlvid: stopped by {name} after step {self.step}/{self.total_steps}; checkpoint: {path}\n"
                   f"rlvid: to resume, rerun the same command with trainer.resume=auto "
                   f"(output_dir {self.output_dir})")
        if self.accelerator.is_main_process:
            print(message, file=sys.stderr, flush=True)
        raise RunInterrupted(128 + signum)

    def maybe_evaluate(self, run_log: RunLogger, force: bool = False) -> dict[str, float]:
        """Run the hooks that are due (all of them with `force`), log their metrics and print them as a table."""
        epoch_end = self.step % self.steps_per_epoch == 0
        hooks = self.hooks.hooks if force else self.hooks.due(self.step, epoch_end, self.step == self.total_steps)
        if not hooks:
            return {}
        metrics: dict[str, float] = {}
        start = time.perf_counter()
        if self.accelerator.is_main_process:
            metrics = self.hooks.run(
                hooks, self.output_dir, self.step, model=self.policy.model, policy=self.policy,
                epoch=max(self.epoch_of(self.step - 1), 0), builder=self.builder, samples=self.val_samples,
                reward_set=self.reward_set)
            metrics["time/eval"] = time.perf_counter() - start
            run_log.log(metrics, self.step, advance=False)
            if metrics:
                shown = scrub(metrics, self.recipe.logging.secret_env)  # reward labels may hold secret values
                console.write(format_eval_table(shown, f"{self.stage} eval at step {self.step}"))
        self.accelerator.wait_for_everyone()
        return metrics

    def reached_stop_when(self, metrics: dict[str, float]) -> bool:
        """True (on every process) when this step's evaluation reached every `trainer.stop_when` threshold."""
        wanted = self.recipe.trainer.stop_when
        if not wanted:
            return False
        reached = bool(metrics) and all(k in metrics and metrics[k] >= v for k, v in wanted.items())
        if reduce_max(self.accelerator, float(reached)) <= 0:
            return False
        logger.info("trainer.stop_when %s reached at step %d/%d: stopping early", wanted, self.step, self.total_steps)
        return True

    def maybe_save(self) -> Path | None:
        """Checkpoint every `save_steps` and at the last step; returns the folder when one was written."""
        every = self.recipe.trainer.save_steps
        if (every and self.step % every == 0) or self.step == self.total_steps:
            return self.save_now()
        return None

    def save_now(self) -> Path:
        return save_checkpoint(self.accelerator, self.output_dir, self.step,
                               {"epoch": self.epoch_of(self.step - 1), "stage": self.stage},
                               keep=self.recipe.trainer.save_total_limit, extra_files=self.write_hf_files)

    def write_hf_files(self, folder: Path) -> None:
        """Make a checkpoint folder loadable with `from_pretrained` too (config, processor; main process)."""
        write_hf_files(self.accelerator.unwrap_model(self.model), self.processor, folder)

    def save_final(self) -> Path:
        return save_final_model(self.accelerator, self.model, self.processor, self.output_dir / "final",
                                save_merged=self.recipe.model.save_merged)

    # ---------------------------------------------------------- the update

    def accumulate_and_step(self, n_micro_batches: int, loss_fn: Callable[[int], tuple[torch.Tensor, dict]],
                            step: int, samples: Sequence = (), summed: tuple[str, ...] = ("loss",)
                            ) -> dict[str, float]:
        """Backward every micro-batch, then one optimizer step (the normaliser contract of rlvid.algos).

        `loss_fn(i)` returns micro-batch i's loss, already divided by the step's global normaliser,
        and its metrics. Metrics named in `summed` are added over micro-batches (each is a share of
        the step's loss), the others averaged. Losses are SUMMED (not averaged over accumulation
        steps) and multiplied by the number of processes, because DDP averages gradients. Gradients
        are all-reduced only on the last micro-batch; a process with fewer micro-batches runs
        zero-loss ones so every process joins the same collectives. A non-finite loss raises (naming the step and saving
        `samples`) or, with `trainer.on_nan: skip`, drops the update on every process. Under DeepSpeed (ZeRO-2/3)
        accumulation ends on the last micro-batch only, where the engine takes the step's one update, and the
        loss is not divided again by DeepSpeed's accumulation count, so gradients match DDP's; a non-finite loss
        always raises there (the engine cannot drop an accumulated update).
        """
        acc = self.accelerator
        world = acc.num_processes
        deepspeed = uses_deepspeed(acc)
        most = int(reduce_max(acc, n_micro_batches))
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        bad = 0.0
        try:
            for i in range(most):
                sync = i == most - 1
                with (nullcontext() if sync or world == 1 else acc.no_sync(self.model)):
                    if i < n_micro_batches:
                        loss, mb_metrics = loss_fn(i)
                        for k, v in mb_metrics.items():
                            sums[k] = sums.get(k, 0.0) + float(v)
                            counts[k] = counts.get(k, 0) + 1
                        if not torch.isfinite(loss.detach()):
                            bad = 1.0
                    else:
                        loss = sum(p.sum() for p in self.model.parameters() if p.requires_grad) * 0.0
                    if not deepspeed:
                        acc.backward(loss * world)
                        continue
                    # DeepSpeed updates inside the backward that ends accumulation: check finiteness first, and
                    # end accumulation on the last micro-batch only; the loss already carries the step's
                    # normaliser, so DeepSpeed must not divide it by its accumulation count again
                    if sync and reduce_max(acc, bad) > 0:
                        self.raise_nonfinite_under_deepspeed(step, samples)
                    acc.sync_gradients = sync
                    acc.backward(loss * world, scale_wrt_gas=False)
        finally:
            acc.sync_gradients = True
        metrics = {k: sums[k] if k in summed else sums[k] / counts[k] for k in sums}
        if not deepspeed and reduce_max(acc, bad) > 0:
            path = self.save_bad_samples(step, samples, "non-finite loss")
            if self.recipe.trainer.on_nan == "raise":
                raise NonFiniteError(f"{self.stage} step {step + 1}: non-finite loss; samples saved to {path}")
            self.optimizer.zero_grad(set_to_none=True)
            return dict(metrics, skipped_nonfinite=1.0)
        if self.optim_config().max_grad_norm > 0:
            grad_norm = acc.clip_grad_norm_(self.model.parameters(), self.optim_config().max_grad_norm)
            metrics["grad_norm"] = float(grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return dict(metrics, skipped_nonfinite=0.0)

    def raise_nonfinite_under_deepspeed(self, step: int, samples: Sequence) -> None:
        """A non-finite loss under DeepSpeed: the engine holds the step's accumulated gradients, so the update
        cannot be dropped (`trainer.on_nan: skip`); stop before it is applied."""
        path = self.save_bad_samples(step, samples, "non-finite loss")
        skip = " (trainer.on_nan: skip cannot drop an update under DeepSpeed)" if self.recipe.trainer.on_nan == "skip" \
            else ""
        raise NonFiniteError(f"{self.stage} step {step + 1}: non-finite loss; samples saved to {path}{skip}")

    def save_bad_samples(self, step: int, samples: Sequence, reason: str, extra: dict | None = None) -> Path:
        """Write this process's samples of a failed step to output_dir/bad_steps/step-N-rankR.jsonl."""
        path = self.output_dir / "bad_steps" / f"step-{step + 1:06d}-rank{self.accelerator.process_index}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        secret_env = self.recipe.logging.secret_env
        with open(path, "w") as f:
            for i, s in enumerate(samples):
                rec = {"reason": reason, "sample": s.to_dict() if hasattr(s, "to_dict") else str(s)}
                for k, v in (extra or {}).items():
                    rec[k] = v[i] if isinstance(v, list) and len(v) == len(samples) else v
                f.write(json.dumps(scrub(json.loads(json.dumps(rec, default=str)), secret_env)) + "\n")
        return path


def reduce_max(accelerator: Accelerator, value: float) -> float:
    if accelerator.num_processes == 1:
        return float(value)
    t = torch.tensor([float(value)], device=accelerator.device)
    return float(accelerator.reduce(t, reduction="max")[0])
