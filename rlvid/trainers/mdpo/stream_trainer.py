"""M-DPO on streaming pairs (`StreamPair`, trainers/mdpo/stream_pairs.py) through the shared loop.

Each step takes `mdpo.pairs_per_step` pairs, recomputes the policy's summed log-probs over the
policy tokens of both trajectories (one padded forward) and applies `algos.compute_dpo_loss` with
the recipe's `mdpo` settings against the stored reference log-probs. The update, checkpoints,
resume, hooks and logging are the loop's (trainers/streaming_loop.py: `StreamingRun`).
"""

from __future__ import annotations

import torch

from rlvid.algos.dpo_loss import compute_dpo_loss
from rlvid.trainers.mdpo.stream_pairs import StreamPair, sequence_logps
from rlvid.trainers.streaming_loop import StreamingRun


class StreamingMDPOTrainer(StreamingRun):
    stage = "mdpo"

    def __init__(self, recipe, policy, pairs: list[StreamPair], **kwargs):
        if not pairs:
            raise ValueError("streaming M-DPO: no pairs (every stream's sampled transcripts scored the same; "
                             "raise mdpo.num_samples or rollout.temperature, or lower mdpo.min_gap)")
        super().__init__(recipe, policy, pairs, **kwargs)
        self.mean_gap = sum(p.gap for p in pairs) / len(pairs)

    @property
    def global_batch_size(self) -> int:
        return self.recipe.mdpo.pairs_per_step

    def train_step(self, pairs: list[StreamPair], step: int) -> dict[str, float]:
        cfg, n = self.recipe.mdpo, len(pairs)
        model = self.policy.model
        model.train()
        logps, tokens = sequence_logps(model, [p.chosen for p in pairs] + [p.rejected for p in pairs])
        ref_chosen = torch.tensor([p.ref_chosen for p in pairs])
        ref_rejected = torch.tensor([p.ref_rejected for p in pairs])
        gap = torch.tensor([p.gap for p in pairs], dtype=torch.float32)
        loss, m = compute_dpo_loss(
            logps[:n], logps[n:], ref_chosen, ref_rejected, beta=cfg.beta, loss=cfg.loss,
            label_smoothing=cfg.label_smoothing, metric_gap=gap, gap_weighting=cfg.gap_weighting,
            gap_normalizer=self.mean_gap, margin_scale=cfg.margin_scale, sft_gamma=cfg.sft_gamma,
            chosen_nll=-logps[:n] / tokens[:n].clamp(min=1), normalizer=n, loss_kwargs=dict(cfg.loss_kwargs))
        self.update.samples = [p.clip for p in pairs]
        self.update.zero_grad()
        loss.backward()
        self.update.step()
        metrics = {k: float(v) for k, v in m.items()}
        metrics.update({"loss": float(loss.detach()), "logps/chosen": float(logps[:n].detach().mean()),
                        "logps/rejected": float(logps[n:].detach().mean()), **self.update.metrics})
        return metrics
