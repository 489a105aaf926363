"""SFT: cross-entropy on the ground-truth answer text (`sft_target`: think block + answer), completion tokens only.

Used alone (`rlvid sft RECIPE`, or `trainer.algorithm: sft`) or as the warm start that
`rlvid train` runs before GRPO when `sft.steps > 0`. It shares everything but the step with GRPO:
data order, micro-batching, the normaliser contract (`token_mean` over the whole step), logging,
hooks and checkpoints (`rlvid.trainers.loop.Trainer`).
"""

from __future__ import annotations

from rlvid.algos import aggregate_loss, local_normalizer
from rlvid.data.prompts import sft_target
from rlvid.trainers.loop import OptimConfig, Trainer, micro_batches, reduce_sum


class SFTTrainer(Trainer):
    stage = "sft"

    @property
    def global_batch_size(self) -> int:
        return self.recipe.sft.global_samples_per_step

    @property
    def max_steps(self) -> int:
        return self.recipe.sft.steps if self.recipe.sft.steps > 0 else self.recipe.trainer.max_steps

    def optim_config(self) -> OptimConfig:
        s, t = self.recipe.sft, self.recipe.trainer
        return OptimConfig(s.lr, s.lr_scheduler, s.warmup_ratio, t.weight_decay, t.max_grad_norm)

    def train_step(self, samples: list, step: int) -> dict[str, float]:
        t, policy = self.timer, self.policy
        tok = policy.tokenizer
        with t("encode"):
            encoded = policy.encode(samples)
            builder = policy.builder
            targets = [tok(sft_target(s, builder.template, builder.reasoning), add_special_tokens=False)["input_ids"]
                       + [tok.eos_token_id] for s in samples]
            batches = [policy.batch([encoded[i] for i in rows], [targets[i] for i in rows], shared_prefix=False)
                       for rows in micro_batches(len(samples), self.recipe.trainer.micro_batch_size_per_device)]
            tokens = sum(float(local_normalizer("token_mean", b.mask)) for b in batches)
            normalizer = reduce_sum(self.accelerator, tokens)

        def loss_fn(i: int):
            logp, mask = policy.logprobs(batches[i], grad=True)
            loss = aggregate_loss(-logp, mask, "token_mean", normalizer.float().to(mask.device))
            accuracy = ((logp > -0.6931) & mask).sum() / mask.sum().clamp(min=1)  # p(target token) > 0.5
            return loss, {"loss": float(loss.detach()), "token_accuracy": float(accuracy)}

        with t("update_actor"):
            self.model.train()
            metrics = self.accumulate_and_step(len(batches), loss_fn, step, samples)
        return metrics
