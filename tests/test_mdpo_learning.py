"""Learning test: after a short SFT warm start, M-DPO on metric-ranked pairs raises held-out mean IoU;
the same run on flipped pairs (chosen and rejected swapped) does not.

Held-out mean IoU is measured on outputs sampled as pair building samples them (8 per prompt at
temperature 0.7, fixed seed) over 40 held-out prompts, which varies far less than 40 greedy answers;
the greedy mIoU of the evaluation hook is printed next to it.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from tiny_setup import make_tiny_setup, write_recipe

from rewards import sample_columns
from rlvid.app.compose import mdpo_trainer
from rlvid.app.train import run_train
from rlvid.config import load_recipe
from rlvid.data.recipe_data import load_split, make_input_builder
from rlvid.models.loading import load_policy, load_processor
from rlvid.policy import Policy
from rlvid.rollout import SamplingParams, make_engine
from rlvid.trainers.mdpo.pairs import read_pairs

MDPO_STEPS = 30


def sampled_mean_iou(recipe, model_dir) -> float:
    """Mean temporal IoU of 8 outputs per held-out prompt sampled at temperature 0.7 (seeded)."""
    from rewards import compose_rewards

    processor = load_processor(str(model_dir))
    builder = make_input_builder(recipe, processor)
    model = load_policy(recipe.model, str(model_dir)).eval()
    engine = make_engine(recipe, Policy(model, builder))
    samples = load_split(recipe, "val")
    torch.manual_seed(0)
    rollouts = engine.generate(samples, 8, SamplingParams(temperature=0.7, max_new_tokens=14))
    scores = compose_rewards(recipe.rewards.functions)(
        rollouts.texts, **sample_columns([samples[i] for i in rollouts.prompt_index])).total
    return sum(scores) / len(scores)


def greedy_miou(metrics_path) -> float:
    rows = [json.loads(line) for line in open(metrics_path)]
    return [r for r in rows if "eval/temporal_grounding/mIoU" in r][-1]["eval/temporal_grounding/mIoU"]


def flip(pair):
    """The pair with its outputs swapped (scores kept, so the gap stays >= 0): a preference for the worse output."""
    return dataclasses.replace(pair, chosen=pair.rejected, rejected=pair.chosen, chosen_ids=pair.rejected_ids,
                               rejected_ids=pair.chosen_ids, ref_chosen_logp=pair.ref_rejected_logp,
                               ref_rejected_logp=pair.ref_chosen_logp)


@pytest.mark.slow
def test_mdpo_raises_held_out_iou_and_flipped_pairs_do_not(tmp_path):
    setup = make_tiny_setup(tmp_path, n=200)
    held_out = setup["data"] / "held_out.jsonl"  # val + test: 40 clips never trained on
    held_out.write_text((setup["data"] / "val.jsonl").read_text() + (setup["data"] / "test.jsonl").read_text())
    path = write_recipe(tmp_path / "mdpo.yaml", setup, tmp_path / "mdpo", {
        "data": {"val": str(held_out)},
        "rollout": {"max_new_tokens": 14, "temperature": 0.7},
        "sft": {"steps": 40, "lr": 3.0e-3, "global_samples_per_step": 8},
        "trainer": {"algorithm": "mdpo", "max_steps": MDPO_STEPS, "lr": 3.0e-3, "micro_batch_size_per_device": 16,
                    "eval_steps": 1000},
        "mdpo": {"num_samples": 8, "min_gap": 0.1, "pairs_per_prompt": 2, "pairs_per_step": 8,
                 "generation_batch_size": 16, "beta": 0.1, "sft_gamma": 1.0},
        "rewards": {"functions": [{"name": "temporal_iou"}]},
        "hooks": [{"name": "eval_grounding"}],
    })
    run_train(str(path))
    recipe = load_recipe(path)
    sft_dir, run = tmp_path / "mdpo" / "sft" / "final", tmp_path / "mdpo"
    pairs = read_pairs(run / "pairs")
    assert len(pairs) >= MDPO_STEPS * 8 and all(p.gap >= 0.1 for p in pairs)

    # the control: the very same start, pairs and settings, with every preference reversed
    mdpo_trainer(recipe, [flip(p) for p in pairs], tmp_path, model_path=str(sft_dir),
                output_dir=tmp_path / "flipped").fit()

    before, after, flipped = (sampled_mean_iou(recipe, d) for d in (sft_dir, run / "final",
                                                                     tmp_path / "flipped" / "final"))
    greedy = [greedy_miou(p) for p in (run / "sft" / "metrics.jsonl", run / "metrics.jsonl",
                                       tmp_path / "flipped" / "metrics.jsonl")]
    print(f"held-out sampled mean IoU: SFT start {before:.3f}, after M-DPO {after:.3f}, flipped pairs "
          f"{flipped:.3f}; greedy mIoU {greedy[0]:.3f} -> {greedy[1]:.3f} (flipped {greedy[2]:.3f}); "
          f"{len(pairs)} pairs")
    assert after >= before + 0.03
    assert flipped <= before
    assert after >= flipped + 0.05
