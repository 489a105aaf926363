"""Build M-DPO pairs: sample n outputs per prompt, score each with the task metric, pair them by metric gap.

    rlvid mdpo-pairs RECIPE --n 4 --out DIR          (torchrun / accelerate launch for several processes)

Prompts are the recipe's train split (with `mdpo.cotasks`, each dense_caption sample becomes its
chain's turns, `rlvid.trainers.mdpo.cotasks`). They are sharded over processes by position (prompt k goes
to process k mod world); each process samples with the rollout engine (`rollout.*`; temperature
must be > 0), scores with the metric (`mdpo.metric`, else the recipe's `rewards`; a CoTasks turn
with its sub-task scorer), forms pairs (`form_pairs`, `mdpo.min_gap`, `mdpo.pairs_per_prompt`),
computes the reference log-probs of both outputs with the same model when
`mdpo.reference: precomputed`, and appends them to its own files in DIR (`pairs.PairWriter`). A restart
skips finished prompts; when every process is done the main one writes summary.json and the
`complete` marker. Each generation batch is seeded from `trainer.seed` and its prompt ids, so a
rerun with the same processes and batch size samples the same outputs.
"""

from __future__ import annotations

import gc
import json
import logging
import uuid
from pathlib import Path

import torch

from rewards import compose_rewards, score
from rlvid.data.atomic import write_text_atomic
from rlvid.data.recipe_data import load_split, make_input_builder
from rlvid.data.sample import Sample
from rlvid.models.loading import load_policy, load_processor
from rlvid.policy import Policy
from rlvid.rollout import Rollouts, SamplingParams, make_engine
from rlvid.rollout.collect import check_settings, pending, sample_batches
from rlvid.trainers.mdpo.batch import reference_logps
from rlvid.trainers.mdpo.cotasks import ChainInputBuilder, ChainPrompt, expand_cotasks, score_turns
from rlvid.trainers.mdpo.pairs import (
    COMPLETE,
    SETTINGS,
    Pair,
    PairWriter,
    finished_prompt_ids,
    form_pairs,
    is_complete,
    model_key,
    pair_summary,
)

logger = logging.getLogger("rlvid.mdpo")

Prompt = Sample | ChainPrompt


def pair_prompts(recipe, samples: list[Sample]) -> list[Prompt]:
    """The prompts pairs are built for: the samples, with CoTasks turns in place of dense_caption samples."""
    return expand_cotasks(samples, recipe.mdpo.cotasks_order) if recipe.mdpo.cotasks else list(samples)


class PairScorer:
    """Scores completions with the M-DPO metric: `mdpo.metric` (else `rewards.functions`) for samples,
    the sub-task scorer for CoTasks turns. A sample no metric applies to scores None (it is never paired)."""

    def __init__(self, recipe, recipe_dir: str | Path | None = None):
        specs = recipe.mdpo.metric or recipe.rewards.functions
        self.reward_set = compose_rewards(specs, on_error=recipe.rewards.on_error, base_dir=recipe_dir,
                                          timeout_s=recipe.rewards.timeout_s) if specs else None
        self.caption_scorer = recipe.mdpo.cotasks_caption_scorer

    def __call__(self, prompts: list[Prompt], completions: list[str], completion_ids: list[list[int]] | None = None
                 ) -> list[float | None]:
        scores: list[float | None] = [None] * len(prompts)
        turns = [i for i, p in enumerate(prompts) if isinstance(p, ChainPrompt)]
        if turns:
            for i, s in zip(turns, score_turns([prompts[i] for i in turns], [completions[i] for i in turns],
                                               self.caption_scorer), strict=True):
                scores[i] = s
        plain = [i for i, p in enumerate(prompts) if not isinstance(p, ChainPrompt)]
        if plain:
            if self.reward_set is None:
                raise ValueError("M-DPO needs a metric to rank samples: set mdpo.metric or rewards.functions")
            ids = None if completion_ids is None else [completion_ids[i] for i in plain]
            out = score(self.reward_set, [prompts[i] for i in plain], [completions[i] for i in plain], ids)
            for k, i in enumerate(plain):
                applies = any(out.scores[label][k] is not None for label in self.reward_set.labels)
                scores[i] = out.total[k] if applies else None
        return scores


def pairs_of_batch(recipe, prompts: list[Prompt], rollouts: Rollouts, scores: list[float | None], batch: str,
                   builder) -> tuple[list[Pair], list[list[float | None]]]:
    """Pairs of every prompt of a generation batch, and each prompt's list of sample scores."""
    cfg = recipe.mdpo
    pairs, per_prompt = [], []
    for k, prompt in enumerate(prompts):
        rows = [r for r, p in enumerate(rollouts.prompt_index) if p == k]
        texts = [rollouts.texts[r] for r in rows]
        group = [scores[r] for r in rows]
        per_prompt.append(group)
        sample = prompt.sample if isinstance(prompt, ChainPrompt) else prompt
        cotask = {"order": prompt.order, "turn": prompt.turn} if isinstance(prompt, ChainPrompt) else None
        rendered = builder.prompt_text(prompt)
        for c, r in form_pairs(group, cfg.min_gap, cfg.pairs_per_prompt, texts):
            pairs.append(Pair(prompt.id, sample, texts[c], texts[r], float(group[c]), float(group[r]),
                              rollouts.token_ids[rows[c]], rollouts.token_ids[rows[r]], cotask, rendered,
                              batch=batch))
    return pairs, per_prompt


def pair_settings(recipe, model_path: str, n: int) -> dict:
    """What makes pairs of one folder comparable (settings.json)."""
    from dataclasses import asdict

    from rlvid.config import recipe_to_dict

    cfg = recipe.mdpo
    metric = recipe_to_dict(recipe)["mdpo"]["metric"] or recipe_to_dict(recipe)["rewards"]["functions"]
    return {"model": model_key(model_path), "num_samples": n, "min_gap": cfg.min_gap,
            "pairs_per_prompt": cfg.pairs_per_prompt, "metric": metric, "cotasks": cfg.cotasks,
            "cotasks_order": cfg.cotasks_order, "cotasks_caption_scorer": cfg.cotasks_caption_scorer,
            "reference": cfg.reference, "sampling": asdict(SamplingParams.from_recipe(recipe.rollout)),
            "seed": recipe.trainer.seed}


def build_pairs(recipe, model_path: str, out_dir: str | Path, accelerator, recipe_dir: str | Path | None = None,
                num_samples: int | None = None, samples: list[Sample] | None = None) -> Path:
    """Build (or finish building) the pair folder `out_dir` with the model at `model_path`; every process calls it.

    `num_samples` overrides `mdpo.num_samples`; `samples` replaces the recipe's train split.
    """
    out_dir = Path(out_dir)
    n = num_samples or recipe.mdpo.num_samples
    if n < 2:
        raise ValueError(f"M-DPO pairs need at least 2 samples per prompt, got {n}")
    if recipe.rollout.temperature <= 0:
        raise ValueError("M-DPO pair building samples: rollout.temperature must be > 0")
    check_settings(out_dir, pair_settings(recipe, model_path, n), accelerator, SETTINGS)
    if is_complete(out_dir):
        logger.info("pairs in %s are complete; not rebuilding", out_dir)
        return out_dir
    prompts = pair_prompts(recipe, samples if samples is not None else load_split(recipe, "train"))
    done = finished_prompt_ids(out_dir)
    todo = pending(prompts, done, accelerator)
    logger.info("rank %d: %d of %d prompts to sample (%d finished before)", accelerator.process_index, len(todo),
                len(prompts), len(done))
    if todo:
        _sample_and_pair(recipe, model_path, out_dir, accelerator, recipe_dir, n, prompts, done)
        release_memory()  # the sampling model is gone with _sample_and_pair's frame
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        summary = pair_summary(out_dir)
        summary.update(model=str(model_path), num_samples=n, min_gap=recipe.mdpo.min_gap)
        write_text_atomic(out_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
        (out_dir / COMPLETE).write_text("ok\n")
        logger.info("pairs: %s", summary)
    accelerator.wait_for_everyone()
    return out_dir


def _sample_and_pair(recipe, model_path: str, out_dir: Path, accelerator, recipe_dir, n: int,
                     prompts: list[Prompt], done: set[str]) -> None:
    processor = load_processor(model_path, recipe.model.trust_remote_code)
    builder = ChainInputBuilder.like(make_input_builder(recipe, processor, base_dir=recipe_dir))
    model = load_policy(recipe.model, model_path, device=accelerator.device).eval()
    policy = Policy(model, builder)
    engine = make_engine(recipe, policy)
    scorer = PairScorer(recipe, recipe_dir)
    writer = PairWriter(out_dir, accelerator.process_index)
    micro = max(1, recipe.trainer.micro_batch_size_per_device // 2)

    def finish(_index: int, chunk: list[Prompt], rollouts: Rollouts) -> None:
        scores = scorer([chunk[i] for i in rollouts.prompt_index], rollouts.texts, rollouts.token_ids)
        tag = f"r{accelerator.process_index}-{uuid.uuid4().hex[:10]}"
        pairs, per_prompt = pairs_of_batch(recipe, chunk, rollouts, scores, tag, builder)
        if pairs and recipe.mdpo.reference == "precomputed":
            with accelerator.autocast():
                refs = reference_logps(policy, pairs, micro)
            for pair, (c, r) in zip(pairs, refs, strict=True):
                pair.ref_chosen_logp, pair.ref_rejected_logp, pair.ref_model = c, r, model_key(model_path)
        writer.write_batch(tag, [p.id for p in chunk], per_prompt, pairs)

    sample_batches(prompts, engine, SamplingParams.from_recipe(recipe.rollout), k=n,
                   batch_size=recipe.mdpo.generation_batch_size, seed=recipe.trainer.seed, state=accelerator,
                   done=done, finish=finish)


def release_memory() -> None:
    """Free what a finished stage held (its sampling model, a round's trainer) before the next stage loads."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
