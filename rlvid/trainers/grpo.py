"""GRPO: sample G completions per prompt, score them, and take a clipped policy-gradient step.

One step, as `GRPOTrainer.train_step` reads:

    gen -> reward -> select -> adv -> encode -> old -> ref -> update_actor -> sync

Each phase is one call inside a named timer (logged as time/<phase> every step). Groups stay whole
on the process that generated them (prompts are sharded, never completions), so group
statistics are local; only `trainer.scale_rewards: batch` gathers rewards across processes.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch

from rewards import NonFiniteRewardError, RewardSet, reward_state, score
from rlvid.algos import compute_advantages, compute_policy_loss, local_normalizer, rollout_is
from rlvid.models.vision_reuse import visual_tokens
from rlvid.policy import Policy, SequenceBatch
from rlvid.rollout import HFRolloutEngine, RolloutEngine, Rollouts, SamplingParams
from rlvid.rollout.is_correction import rollout_logprob_rows
from rlvid.trainers.completion_table import completion_rows
from rlvid.trainers.loop import NonFiniteError, Trainer, micro_batches, reduce_max, reduce_sum
from rlvid.trainers.selection import refill_groups, select_groups


@dataclass
class MicroBatch:
    """Rows of one forward/backward: the policy's sequence batch (inputs, completion mask, shared-prefix
    layout), advantages, rollout positions, and the sampling engine's log-probs in the mask's layout (when
    the engine returns them, e.g. vLLM)."""

    seq: SequenceBatch
    advantages: torch.Tensor
    rows: list[int]
    rollout_logp: torch.Tensor | None = None

    @property
    def mask(self) -> torch.Tensor:
        return self.seq.mask


class GRPOTrainer(Trainer):
    """Group Relative Policy Optimization on video prompts (Dr.GRPO / DAPO / GSPO as recipe options)."""

    stage = "grpo"

    def __init__(self, recipe, policy: Policy, train_samples: list, *, reward_set: RewardSet | None,
                 engine: RolloutEngine | None = None, reference: Policy | None = None, **components):
        """`reward_set(texts, **columns)` scores completions (a `rewards.RewardSet`); `engine` samples from
        `policy` (default: the hf engine); `reference` is the frozen KL reference (None: no KL term, or with LoRA
        the policy without its adapters). Other components as `Trainer`."""
        if reward_set is None:
            raise ValueError("GRPO needs rewards: the recipe's rewards.functions is empty")
        super().__init__(recipe, policy, train_samples, reward_set=reward_set, **components)
        self.sampling = SamplingParams.from_recipe(recipe.rollout)
        self.engine = engine if engine is not None else HFRolloutEngine(policy)
        self.reference = reference

    @property
    def global_batch_size(self) -> int:
        return self.recipe.trainer.global_prompts_per_step

    @property
    def updates_per_step(self) -> int:
        return self.recipe.trainer.num_iterations

    @property
    def micro_batches_per_update(self) -> int:
        """This process's G rows per prompt in micro-batches (as `make_micro_batches` splits them)."""
        rows = self.global_batch_size * self.recipe.rollout.num_generations // self.accelerator.num_processes
        return max(1, -(-rows // self.recipe.trainer.micro_batch_size_per_device))

    # ------------------------------------------------------------------ one step

    def train_step(self, prompts: list, step: int) -> dict[str, float]:
        with self.policy.step(), self.reference.step() if self.reference else nullcontext():
            return self._train_step(prompts, step)  # a video's visual features: once per step and model

    def _train_step(self, prompts: list, step: int) -> dict[str, float]:
        t, cfg = self.timer, self.recipe.trainer
        with t("gen"):
            rollouts = self.engine.generate(prompts, self.recipe.rollout.num_generations, self.sampling)
        with t("reward"):
            rewards, reward_metrics = self.compute_rewards(prompts, rollouts, step)
        if rewards is None:
            return dict(reward_metrics, skipped_nonfinite=1.0)
        with t("select"):
            prompts, rollouts, rewards, select_metrics = self.select(prompts, rollouts, rewards, step)
        with t("adv"):
            advantages = self.compute_advantages(rollouts, rewards)
        if cfg.log_completions:  # trainer.log_completions: a table of what the model wrote (loop logs it)
            self.recent_completions = completion_rows(prompts, rollouts, rewards, advantages, cfg.log_completions)
        with t("encode"):
            batches = self.make_micro_batches(prompts, rollouts, advantages)
            normalizer = self.global_normalizer(batches)
        with t("old"):
            old_logps = self.logprobs(self.policy, batches) if cfg.num_iterations > 1 else None
        with t("ref"):
            ref_logps = self.reference_logprobs(batches)
        with t("update_actor"):
            update_metrics = self.update_actor(batches, old_logps, ref_logps, normalizer, step, prompts)
        with t("sync"):
            self.engine.sync_weights(self.policy.model)
        return {**reward_metrics, **select_metrics, **self.rollout_metrics(rollouts, advantages), **update_metrics,
                **self.visual_metrics(prompts, batches)}

    # ------------------------------------------------------------------ phases

    def compute_rewards(self, prompts: list, rollouts: Rollouts, step: int):
        """Per-completion total reward [N] and reward metrics; None (step skipped) for NaN with on_nan: skip."""
        samples = [prompts[i] for i in rollouts.prompt_index]
        bad, error = 0.0, None
        try:
            out = score(self.reward_set, samples, rollouts.texts, rollouts.token_ids,
                        trainer_state=reward_state(step, self.recipe.trainer.max_steps))
            total = torch.tensor(out.total, dtype=torch.float32)
            bad = float(not torch.isfinite(total).all())
        except NonFiniteRewardError as e:  # NaN/inf: skipped or raised below, on every process alike
            bad, error = 1.0, e
        except Exception as e:  # a failing reward function: save what it saw, then stop
            path = self.save_bad_samples(step, samples, f"reward error: {e}", {"completion": rollouts.texts})
            raise RuntimeError(f"grpo step {step + 1}: reward failed ({e}); samples saved to {path}") from e
        if reduce_max(self.accelerator, bad) > 0:
            path = self.save_bad_samples(step, samples, f"non-finite reward: {error}", {"completion": rollouts.texts})
            if self.recipe.trainer.on_nan == "raise":
                raise NonFiniteError(f"grpo step {step + 1}: non-finite reward ({error}); samples saved to {path}")
            return None, {}
        return total, out.metrics("rewards")

    def select(self, prompts: list, rollouts: Rollouts, rewards: torch.Tensor, step: int):
        """Online selection (`selection.online`); dynamic_sampling refills from seeded extra prompts."""
        mode = self.recipe.selection.online
        if mode != "dynamic_sampling":
            return select_groups(prompts, rollouts, rewards, mode)

        def generate_more(attempt: int):
            extra = self.refill_prompts(step, attempt)
            more = self.engine.generate(extra, self.recipe.rollout.num_generations, self.sampling)
            more_rewards, _ = self.compute_rewards(extra, more, step)
            if more_rewards is None:  # non-finite rewards skipped (on_nan: skip): nothing usable in this try
                return extra, more.select([]), torch.zeros(0)
            return extra, more, more_rewards

        def done_everywhere(done: bool) -> bool:  # every process generates the same number of times
            return reduce_max(self.accelerator, float(not done)) == 0

        return refill_groups((prompts, rollouts, rewards), generate_more, self.recipe.selection.max_tries,
                             done_everywhere)

    def refill_prompts(self, step: int, attempt: int) -> list:
        """This process's share of a seeded draw of extra prompts, so a resumed run draws the same ones."""
        n = self.global_batch_size
        gen = torch.Generator().manual_seed(self.recipe.trainer.seed * 1_000_003 + step * 1_009 + attempt)
        idx = torch.randperm(len(self.train_samples), generator=gen)[:n].tolist()
        per = n // self.accelerator.num_processes
        rank = self.accelerator.process_index
        return [self.train_samples[i] for i in idx[rank * per:(rank + 1) * per]]

    def compute_advantages(self, rollouts: Rollouts, rewards: torch.Tensor) -> torch.Tensor:
        """Group-normalised advantages; groups are whole on this process (see module docstring)."""
        cfg = self.recipe.trainer
        groups = torch.tensor(rollouts.prompt_index, dtype=torch.long)
        if len(rewards) == 0:
            return rewards
        scale = "none" if cfg.scale_rewards == "batch" else cfg.scale_rewards
        advantages = compute_advantages(rewards, group_ids=groups, estimator=cfg.advantage, scale=scale)
        if cfg.scale_rewards == "batch":
            advantages = advantages / (self.batch_reward_std(rewards) + 1e-6)
        return advantages * cfg.advantage_sign

    def batch_reward_std(self, rewards: torch.Tensor) -> float:
        """Unbiased std of all rewards of the step over all processes (for scale_rewards: batch)."""
        n = reduce_sum(self.accelerator, float(rewards.numel()))
        s = reduce_sum(self.accelerator, float(rewards.double().sum()))
        sq = reduce_sum(self.accelerator, float((rewards.double() ** 2).sum()))
        if n < 2:
            return 0.0
        return float(((sq - s * s / n) / (n - 1)).clamp(min=0).sqrt())

    def make_micro_batches(self, prompts: list, rollouts: Rollouts, advantages: torch.Tensor) -> list[MicroBatch]:
        """Prompt+completion rows in micro-batches of `trainer.micro_batch_size_per_device` sequences."""
        encoded = self.policy.encode(prompts)
        out = []
        for rows in micro_batches(len(rollouts), self.recipe.trainer.micro_batch_size_per_device):
            rows = list(rows)
            seq = self.policy.batch([encoded[rollouts.prompt_index[r]] for r in rows],
                                    [rollouts.token_ids[r] for r in rows])
            rollout_logp = None if rollouts.logprobs is None else rollout_logprob_rows(
                seq.mask, [rollouts.logprobs[r] for r in rows])
            out.append(MicroBatch(seq, advantages[rows], rows, rollout_logp))
        return out

    def global_normalizer(self, batches: list[MicroBatch]) -> torch.Tensor:
        """The loss denominator summed over all micro-batches and processes (rlvid.algos contract)."""
        cfg = self.recipe.trainer
        local = sum(float(local_normalizer(cfg.loss_agg, b.mask, self.recipe.rollout.max_new_tokens))
                    for b in batches)
        return reduce_sum(self.accelerator, local).float().cpu()

    def logprobs(self, policy: Policy, batches: list[MicroBatch]) -> list[torch.Tensor]:
        """Per-token log-probs [B, T'] of each micro-batch's completions under `policy` (no grad)."""
        return [policy.logprobs(b.seq, temperature=self.sampling.temperature)[0] for b in batches]

    def reference_logprobs(self, batches: list[MicroBatch]) -> list[torch.Tensor] | None:
        if self.recipe.trainer.beta == 0.0:
            return None
        if self.reference is not None:
            return self.logprobs(self.reference, batches)
        with self.policy.without_adapter():  # LoRA: the base model is the reference
            return self.logprobs(self.policy, batches)

    def update_actor(self, batches: list[MicroBatch], old_logps, ref_logps, normalizer: torch.Tensor,
                     step: int, prompts: list) -> dict[str, float]:
        """`num_iterations` optimizer steps over the rollout batch, each over all micro-batches."""
        cfg = self.recipe.trainer
        device = self.accelerator.device
        self.model.train()
        metrics: dict[str, float] = {}

        def loss_fn(i: int):
            b = batches[i]
            logp, mask = self.policy.logprobs(b.seq, grad=True, temperature=self.sampling.temperature)
            old = old_logps[i] if old_logps is not None else logp.detach()  # mu = 1: ratio exactly 1
            is_weights, is_metrics = None, {}
            if b.rollout_logp is not None:  # engine/trainer mismatch: always logged, corrected when asked
                is_weights, is_metrics = rollout_is(old, b.rollout_logp, mask, cfg.rollout_is_correction,
                                                    cfg.rollout_is_cap)
            loss, m = compute_policy_loss(
                logp, old, b.advantages.to(device), mask, loss=cfg.policy_loss, epsilon=cfg.epsilon,
                epsilon_high=cfg.epsilon_high, importance_sampling_level=cfg.importance_sampling_level,
                ref_logp=None if ref_logps is None else ref_logps[i], beta=cfg.beta, kl_estimator=cfg.kl_estimator,
                rollout_is_weights=is_weights, loss_agg=cfg.loss_agg, normalizer=normalizer.to(device),
                max_completion_length=self.recipe.rollout.max_new_tokens, loss_kwargs=dict(cfg.policy_loss_kwargs))
            return loss, dict({k: float(v) for k, v in m.items()}, **is_metrics, loss=float(loss.detach()))

        for _ in range(cfg.num_iterations):
            metrics = self.accumulate_and_step(len(batches), loss_fn, step, prompts)
        return metrics

    def visual_metrics(self, prompts: list, batches: list[MicroBatch]) -> dict[str, float]:
        """Visual tokens per sequence the LLM saw, share of sampled frames kept (data.video.token_drop), reuse."""
        merge = int(self.processor.video_processor.merge_size)
        rows = sum(len(b.rows) for b in batches)
        tokens = sum(visual_tokens(b.seq.inputs.get("video_grid_thw"), merge) for b in batches)
        videos = [self.builder.video(s) for s in prompts]
        kept = sum(len(v.indices) for v in videos)
        out = {"tokens/visual_per_prompt": tokens / max(rows, 1),
               "tokens/frames_kept_fraction": kept / max(kept + sum(v.dropped_frames for v in videos), 1)}
        stats = self.policy.pop_stats()
        if stats.visual_tokens_total:  # token_drop.mode: token (counted over this step's forwards)
            out["tokens/visual_kept_fraction"] = stats.visual_tokens_kept / stats.visual_tokens_total
            out["tokens/visual_per_prompt"] *= out["tokens/visual_kept_fraction"]
        if stats.videos_computed is not None:
            out["vision/computed"], out["vision/reused"] = float(stats.videos_computed), float(stats.videos_reused)
        return out

    def rollout_metrics(self, rollouts: Rollouts, advantages: torch.Tensor) -> dict[str, float]:
        lengths = torch.tensor([len(ids) for ids in rollouts.token_ids], dtype=torch.float32)
        if lengths.numel() == 0:
            return {"rollout/num_completions": 0.0}
        return {
            "rollout/num_completions": float(lengths.numel()),
            "rollout/completion_length": float(lengths.mean()),
            "rollout/truncated_fraction": float(sum(rollouts.truncated) / max(len(rollouts.truncated), 1)),
            "adv/mean": float(advantages.mean()),
            "adv/abs_mean": float(advantages.abs().mean()),
            "adv/zero_fraction": float((advantages == 0).float().mean()),
        }
