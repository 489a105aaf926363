"""M-DPO (VidChain's metric-based DPO): a DPO update on pairs of video outputs ranked by the task metric.

Pairs come from `rlvid.trainers.mdpo.build` (sampled with the rollout engine, scored by the metric,
paired by metric gap). One step, as `MDPOTrainer.train_step` reads:

    encode -> ref -> update_actor

- encode: the step's pairs as micro-batches of 2P rows (P chosen, then P rejected), each distinct
  prompt through the processor once with its video (`rlvid.trainers.mdpo.batch`, on the `Policy`),
  laid out so that its rows share one prompt forward (`trainer.shared_prefix`);
- ref: the reference's sequence log-probs, stored with the pairs / computed once at start and
  cached (`mdpo.reference: precomputed`), or from a frozen reference model each step (`model`;
  with LoRA the adapter-free base model);
- update_actor: `rlvid.algos.compute_dpo_loss` (sigmoid or IPO; label smoothing; per-pair weight
  from the metric gap or a gap-proportional margin; VidChain's SFT term on the chosen output), one
  optimizer step through the shared `accumulate_and_step`.

The step is one `Policy.step()`: with `trainer.reuse_vision` a video's visual features are computed
once per step and model (the reference pass's serve the update when the vision tower is frozen).

Everything else (data order, per-process shards, LoRA/freezing, logging, evaluation hooks,
checkpoints and resume, NaN handling) is the shared `Trainer`'s. For M-DPO its "samples" are pairs:
`mdpo.pairs_per_step` per optimizer step over all processes, `trainer.micro_batch_size_per_device`
sequences (= half as many pairs) per forward.
"""

from __future__ import annotations

import json
import logging
from contextlib import nullcontext
from pathlib import Path

import torch
from accelerate.utils import gather_object

import rlvid.trainers.mdpo.chain_eval  # noqa: F401  (registers the eval_dense_caption_cotasks hook)
from rlvid.algos import compute_dpo_loss
from rlvid.policy import Policy
from rlvid.trainers.loop import Trainer
from rlvid.trainers.mdpo.batch import PairBatch, pair_micro_batches, reference_logps, sequence_logps
from rlvid.trainers.mdpo.cotasks import ChainInputBuilder
from rlvid.trainers.mdpo.pairs import Pair
from rlvid.trainers.mdpo.pairs import model_key as model_key_of

logger = logging.getLogger("rlvid.mdpo")
REFERENCE_CACHE = "reference_logps.jsonl"


class MDPOTrainer(Trainer):
    """DPO on metric-ranked pairs of video outputs, on the shared training loop."""

    stage = "mdpo"

    def __init__(self, recipe, policy: Policy, pairs: list[Pair], *, reference: Policy | None = None,
                 model_key: str | None = None, **components):
        """`pairs` are what the steps draw; `reference` is the frozen reference of `mdpo.reference: model` (None
        with LoRA: the policy without its adapters); `model_key` names the starting model for the stored
        reference log-probs (`mdpo.reference: precomputed`). Other components as `Trainer`."""
        if len(pairs) < recipe.mdpo.pairs_per_step:
            raise ValueError(f"mdpo: {len(pairs)} pairs, fewer than the mdpo.pairs_per_step="
                             f"{recipe.mdpo.pairs_per_step} one step needs; sample more outputs (mdpo.num_samples, "
                             "rollout.temperature) or lower mdpo.min_gap")
        super().__init__(recipe, policy, pairs, **components)
        self.pairs = self.train_samples
        self.chain_policy = policy.with_builder(ChainInputBuilder.like(policy.builder))  # renders CoTasks turns
        self.reference = None if reference is None else reference.with_builder(self.chain_policy.builder)
        self.model_key = model_key or model_key_of(recipe.model.path)
        self.pairs_per_micro_batch = max(1, recipe.trainer.micro_batch_size_per_device // 2)
        self.mean_gap = sum(p.gap for p in self.pairs) / len(self.pairs)  # "normalized" weights: gap / this
        if recipe.mdpo.reference == "precomputed":
            self.fill_reference_logps()

    @property
    def global_batch_size(self) -> int:
        return self.recipe.mdpo.pairs_per_step

    @property
    def micro_batches_per_update(self) -> int:
        """This process's pairs in micro-batches of micro_batch_size_per_device // 2 pairs (2 rows each)."""
        pairs = self.global_batch_size // self.accelerator.num_processes
        return max(1, -(-pairs // max(1, self.recipe.trainer.micro_batch_size_per_device // 2)))

    # ------------------------------------------------------------------ one step

    def train_step(self, pairs: list[Pair], step: int) -> dict[str, float]:
        reference = self.reference.step() if self.reference is not None else nullcontext()
        with self.chain_policy.step(), reference:  # a video's visual features: once per step and model
            return self._train_step(pairs, step)

    def _train_step(self, pairs: list[Pair], step: int) -> dict[str, float]:
        t = self.timer
        with t("encode"):
            batches = pair_micro_batches(self.chain_policy, pairs, self.pairs_per_micro_batch)
        with t("ref"):
            refs = self.reference_logps(pairs, batches)
        with t("update_actor"):
            update_metrics = self.update_actor(pairs, batches, refs, step)
        return {**pair_metrics(pairs), **update_metrics}

    # ------------------------------------------------------------------ reference

    def reference_logps(self, pairs: list[Pair], batches: list[PairBatch]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(chosen, rejected) reference sequence log-probs [P] of each micro-batch."""
        device = self.accelerator.device
        if self.recipe.mdpo.reference == "precomputed":
            return [(torch.tensor([pairs[r].ref_chosen_logp for r in b.pairs], device=device),
                     torch.tensor([pairs[r].ref_rejected_logp for r in b.pairs], device=device)) for b in batches]
        out = []
        with self.accelerator.autocast():
            for b in batches:
                if self.reference is not None:
                    s = sequence_logps(self.reference, b)
                else:  # LoRA: the base model without its adapters is the reference
                    with self.chain_policy.without_adapter():
                        s = sequence_logps(self.chain_policy, b)
                out.append((s.chosen.detach(), s.rejected.detach()))
        return out

    def fill_reference_logps(self) -> None:
        """Give every pair reference log-probs under the starting model: stored ones when they came from this
        very model, else computed once here (pairs sharded over processes) and cached in output_dir."""
        key = self.model_key
        cache = self.output_dir / REFERENCE_CACHE
        cached = _read_reference_cache(cache, key)
        missing = []
        for p in self.pairs:
            if p.ref_model == key and p.ref_chosen_logp is not None and p.ref_rejected_logp is not None:
                continue
            if p.id in cached:
                p.ref_chosen_logp, p.ref_rejected_logp = cached[p.id]
                p.ref_model = key
                continue
            missing.append(p)
        if not missing:
            return
        acc = self.accelerator
        mine = missing[acc.process_index::acc.num_processes]
        logger.info("computing reference log-probs of %d pairs (%d on this process)", len(missing), len(mine))
        with acc.autocast():
            values = reference_logps(self.chain_policy, mine, self.pairs_per_micro_batch)
        found = dict(zip([p.id for p in mine], values, strict=True))
        if acc.num_processes > 1:
            merged: dict[str, tuple[float, float]] = {}
            for part in gather_object([found]):
                merged.update(part)
            found = merged
        for p in missing:
            p.ref_chosen_logp, p.ref_rejected_logp = found[p.id]
            p.ref_model = key
        if acc.is_main_process:
            cache.parent.mkdir(parents=True, exist_ok=True)
            with open(cache, "a") as f:
                for pid, (c, r) in found.items():
                    f.write(json.dumps({"id": pid, "model": key, "chosen": c, "rejected": r}) + "\n")
        acc.wait_for_everyone()

    # ------------------------------------------------------------------ update

    def update_actor(self, pairs: list[Pair], batches: list[PairBatch], refs, step: int) -> dict[str, float]:
        """One optimizer step over the micro-batches; the loss is the mean over the step's pairs on all processes."""
        cfg = self.recipe.mdpo
        device = self.accelerator.device
        world = self.accelerator.num_processes  # x processes: their mean is then the mean over all pairs
        self.model.train()

        def loss_fn(i: int):
            b = batches[i]
            logps = sequence_logps(self.chain_policy, b, grad=True)
            gap = torch.tensor([pairs[r].gap for r in b.pairs], dtype=torch.float32, device=device)
            loss, m = compute_dpo_loss(
                logps.chosen, logps.rejected, refs[i][0], refs[i][1], beta=cfg.beta, loss=cfg.loss,
                label_smoothing=cfg.label_smoothing, metric_gap=gap, gap_weighting=cfg.gap_weighting,
                gap_normalizer=self.mean_gap, margin_scale=cfg.margin_scale, sft_gamma=cfg.sft_gamma,
                chosen_nll=logps.chosen_nll, normalizer=self.global_batch_size, loss_kwargs=dict(cfg.loss_kwargs))
            metrics = {k: float(v) for k, v in m.items()}
            metrics.update({"loss": float(loss.detach()) * world, "loss/dpo": metrics["loss/dpo"] * world,
                            "loss/sft": metrics["loss/sft"] * world,
                            "logps/chosen": float(logps.chosen.detach().mean()),
                            "logps/rejected": float(logps.rejected.detach().mean())})
            return loss, metrics

        return self.accumulate_and_step(len(batches), loss_fn, step, pairs, summed=("loss", "loss/dpo", "loss/sft"))


def pair_metrics(pairs: list[Pair]) -> dict[str, float]:
    n = max(len(pairs), 1)
    return {
        "pairs/count": float(len(pairs)),
        "pairs/gap": sum(p.gap for p in pairs) / n,
        "pairs/chosen_score": sum(p.chosen_score for p in pairs) / n,
        "pairs/rejected_score": sum(p.rejected_score for p in pairs) / n,
    }


def _read_reference_cache(path: Path, key: str) -> dict[str, tuple[float, float]]:
    if not path.is_file():
        return {}
    out = {}
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a crash
        if rec.get("model") == key:
            out[rec["id"]] = (rec["chosen"], rec["rejected"])
    return out
