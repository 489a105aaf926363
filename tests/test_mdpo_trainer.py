"""M-DPO trainer on the tiny model: per-pair sequence log-probs and the loss of every variant against a hand
computation, reference log-probs (stored, computed once and cached, frozen model, LoRA base), and resume."""

from __future__ import annotations

import json
import math

import pytest
import torch
from tiny_setup import make_tiny_setup, write_recipe

from rlvid.app.compose import mdpo_trainer
from rlvid.config import load_recipe
from rlvid.data.sample import Sample
from rlvid.trainers.mdpo.batch import pair_micro_batches, sequence_logps
from rlvid.trainers.mdpo.pairs import Pair, model_key
from rlvid.trainers.mdpo.trainer import REFERENCE_CACHE

TEXTS = [("<answer>1.0 to 3.0</answer>", "<answer>5.0 to 6.0</answer>"),
         ("<answer>2.5 to 4.0</answer>", "<answer>0.5 to 9.0</answer>"),
         ("<think>a red shape</think><answer>1.0 to 2.0</answer>", "no answer"),
         ("<answer>3.0 to 4.5</answer>", "<answer>3.0 to 4.0</answer>"),
         ("<answer>0.0 to 1.0</answer>", "<answer>6 to 7</answer>"),
         ("<answer>1.5 to 2.5</answer>", "<answer>1.5 to 5.5</answer>")]
SCORES = [(0.9, 0.2), (0.6, 0.5), (0.8, 0.1), (0.4, 0.3), (1.0, 0.0), (0.7, 0.2)]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    return make_tiny_setup(tmp_path_factory.mktemp("mdpo-trainer"))


def make_pairs(setup) -> list[Pair]:
    """Six pairs; pairs 0 and 1 share a prompt (its encoding is reused), pair 5 is a CoTasks turn."""
    from rlvid.data.loaders import load_samples
    from rlvid.data.sample import Event

    samples = load_samples(str(setup["data"] / "train.jsonl")).samples
    dense = Sample(id="dense", video=samples[0].video, duration=samples[0].duration, task="dense_caption",
                   question="Describe.", events=[Event(0.0, 2.0, "a red circle appears")])
    prompts = [samples[0], samples[0], samples[1], samples[2], samples[3], dense]
    pairs = []
    for i, (s, (c, r), (sc, sr)) in enumerate(zip(prompts, TEXTS, SCORES, strict=True)):
        cotask = {"order": "segments_first", "turn": 1} if s.task == "dense_caption" else None
        pid = f"{s.id}#cotask1-segments" if cotask else s.id
        pairs.append(Pair(pid, s, c, r, sc, sr, cotask=cotask, batch=f"b{i}"))
    return pairs


def recipe_for(setup, tmp_path, **overrides):
    mdpo = {"pairs_per_step": 4, **overrides.pop("mdpo", {})}
    trainer = {"algorithm": "mdpo", "lr": 0.0, "micro_batch_size_per_device": 4, "max_steps": 1,
               **overrides.pop("trainer", {})}
    return load_recipe(write_recipe(tmp_path / "r.yaml", setup, tmp_path / "run",
                                    dict(trainer=trainer, mdpo=mdpo, **overrides)))


@torch.no_grad()
def row_by_row_logps(model, builder, pair: Pair) -> tuple[float, float, int]:
    """Chosen and rejected sequence log-probs computed one row at a time with full logits (no shared encoding,
    no logits_to_keep; vision placeholders out of the softmax, as the rollout engines sample), and the chosen
    completion's token count."""
    from rlvid.policy.placeholders import sampled_logits

    out = []
    for text in (pair.chosen, pair.rejected):
        inputs, mask = builder.prompt_with_completions([pair.prompt_item()], [text])
        logits = sampled_logits(model, model(**inputs).logits[0, :-1])
        targets = inputs["input_ids"][0, 1:]
        logp = torch.log_softmax(logits, -1).gather(-1, targets[:, None])[:, 0]
        out.append((float(logp[mask[0, 1:]].sum()), int(mask.sum())))
    return out[0][0], out[1][0], out[0][1]


@pytest.fixture(scope="module")
def trainer_and_truth(setup, tmp_path_factory):
    """A trainer with lr 0 over the six pairs, and each pair's row-by-row log-probs."""
    tmp = tmp_path_factory.mktemp("loss")
    recipe = recipe_for(setup, tmp, mdpo={"reference": "model"})
    pairs = make_pairs(setup)
    trainer = mdpo_trainer(recipe, pairs, tmp, output_dir=tmp / "run")
    builder = trainer.chain_policy.builder
    from rlvid.data.model_inputs import VideoInputBuilder

    assert isinstance(builder, VideoInputBuilder)
    model = trainer.accelerator.unwrap_model(trainer.model).eval()
    truth = [row_by_row_logps(model, builder, p) for p in pairs]
    return trainer, truth


def test_sequence_logps_of_the_batched_chosen_and_rejected_rows_match_row_by_row(trainer_and_truth):
    trainer, truth = trainer_and_truth
    pairs = trainer.pairs
    batches = pair_micro_batches(trainer.chain_policy, pairs, 3)
    assert [b.pairs for b in batches] == [[0, 1, 2], [3, 4, 5]]
    assert all(b.seq.inputs["input_ids"].shape[0] == 6 for b in batches)  # 3 chosen rows, then 3 rejected rows
    got = [sequence_logps(trainer.chain_policy, b) for b in batches]
    chosen = torch.cat([g.chosen for g in got]).tolist()
    rejected = torch.cat([g.rejected for g in got]).tolist()
    nll = torch.cat([g.chosen_nll for g in got]).tolist()
    for i, (c, r, n) in enumerate(truth):
        assert chosen[i] == pytest.approx(c, abs=2e-3), i
        assert rejected[i] == pytest.approx(r, abs=2e-3), i
        assert nll[i] == pytest.approx(-c / n, abs=1e-4), i
    assert chosen[0] != pytest.approx(chosen[1], abs=1e-3)  # same prompt, different completions


def hand_loss(variant, truth, refs, pairs, all_gaps) -> float:
    beta, ls, gamma, ms = variant["beta"], variant["label_smoothing"], variant["sft_gamma"], variant["margin_scale"]
    total = 0.0
    for (pc, pr, n), (rc, rr), p in zip(truth, refs, pairs, strict=True):
        gap = p.chosen_score - p.rejected_score
        h = (pc - rc) - (pr - rr)
        m = ms * gap
        if variant["loss"] == "sigmoid":
            z = beta * h - m
            pair_loss = -(1 - ls) * math.log(1 / (1 + math.exp(-z))) - ls * math.log(1 / (1 + math.exp(z)))
        else:
            pair_loss = (h - (1 / (2 * beta) + m)) ** 2
        weight = {"none": 1.0, "raw": gap, "normalized": gap / (sum(all_gaps) / len(all_gaps))}[variant["weighting"]]
        total += weight * pair_loss + gamma * (-pc / n)
    return total / len(pairs)


VARIANTS = {
    "sigmoid": dict(loss="sigmoid", weighting="none"),
    "sigmoid+label_smoothing": dict(loss="sigmoid", weighting="none", label_smoothing=0.2),
    "ipo": dict(loss="ipo", weighting="none"),
    "sigmoid+raw_gap": dict(loss="sigmoid", weighting="raw"),
    "sigmoid+normalized_gap": dict(loss="sigmoid", weighting="normalized"),
    "sigmoid+margin": dict(loss="sigmoid", weighting="none", margin_scale=2.0),
    "ipo+margin+normalized": dict(loss="ipo", weighting="normalized", margin_scale=0.5),
    "sigmoid+sft": dict(loss="sigmoid", weighting="none", sft_gamma=0.5),
}


def test_step_loss_matches_hand_computation_for_every_variant_and_weighting(trainer_and_truth):
    trainer, truth = trainer_and_truth
    pairs = trainer.pairs
    step_pairs = [pairs[i] for i in (0, 2, 3, 5)]  # 2 micro-batches of 2 pairs; a CoTasks turn among them
    step_truth = [truth[i] for i in (0, 2, 3, 5)]
    offsets = [(0.7, -0.4), (-1.1, 0.3), (0.2, 0.9), (-0.5, -1.6)]  # reference = policy + offset: h != 0
    for p, (c, r, _), (dc, dr) in zip(step_pairs, step_truth, offsets, strict=True):
        p.ref_chosen_logp, p.ref_rejected_logp = c + dc, r + dr
    refs = [(p.ref_chosen_logp, p.ref_rejected_logp) for p in step_pairs]
    cfg = trainer.recipe.mdpo
    cfg.reference = "precomputed"  # the references set above
    all_gaps = [sc - sr for sc, sr in SCORES]
    losses = {}
    for name, v in VARIANTS.items():
        variant = {"beta": 0.5, "label_smoothing": 0.0, "sft_gamma": 0.0, "margin_scale": 0.0, **v}
        cfg.beta, cfg.loss, cfg.label_smoothing = variant["beta"], variant["loss"], variant["label_smoothing"]
        cfg.gap_weighting, cfg.margin_scale, cfg.sft_gamma = v["weighting"], variant["margin_scale"], \
            variant["sft_gamma"]
        metrics = trainer.train_step(step_pairs, 0)
        expected = hand_loss(variant, step_truth, refs, step_pairs, all_gaps)
        assert metrics["loss"] == pytest.approx(expected, rel=1e-3, abs=1e-3), name
        losses[name] = metrics["loss"]
        assert metrics["pairs/count"] == 4 and metrics["skipped_nonfinite"] == 0.0
    assert len({round(v, 4) for v in losses.values()}) == len(VARIANTS)  # every option changes the loss


def _pairs_without_references(setup):
    return make_pairs(setup)[:4]


def test_reference_logps_are_computed_once_at_start_and_cached(setup, tmp_path, monkeypatch):
    recipe = recipe_for(setup, tmp_path, trainer={"max_steps": 1})
    trainer = mdpo_trainer(recipe, _pairs_without_references(setup), tmp_path, output_dir=tmp_path / "run")
    model = trainer.accelerator.unwrap_model(trainer.model).eval()
    for p in trainer.pairs:
        c, r, _ = row_by_row_logps(model, trainer.chain_policy.builder, p)
        assert (p.ref_chosen_logp, p.ref_rejected_logp) == pytest.approx((c, r), abs=2e-3)
        assert p.ref_model == model_key(setup["model"])
    cached = [json.loads(line) for line in open(tmp_path / "run" / REFERENCE_CACHE)]
    assert sorted(c["id"] for c in cached) == sorted(p.id for p in trainer.pairs)
    metrics = trainer.train_step(trainer.pairs, 0)
    assert metrics["rewards/chosen"] == pytest.approx(0.0, abs=1e-3)  # the policy IS the reference at start
    assert metrics["loss"] == pytest.approx(math.log(2), abs=1e-3)

    def fail(*args, **kwargs):
        raise AssertionError("reference log-probs recomputed")

    monkeypatch.setattr("rlvid.trainers.mdpo.trainer.reference_logps", fail)
    again = mdpo_trainer(recipe, _pairs_without_references(setup), tmp_path, output_dir=tmp_path / "run")
    assert [p.ref_chosen_logp for p in again.pairs] == [p.ref_chosen_logp for p in trainer.pairs]
    stored = _pairs_without_references(setup)  # pairs stored with references of this very model are used as they are
    for p in stored:
        p.ref_chosen_logp, p.ref_rejected_logp, p.ref_model = -1.0, -2.0, model_key(setup["model"])
    assert mdpo_trainer(recipe, stored, tmp_path, output_dir=tmp_path / "other").pairs[0].ref_chosen_logp == -1.0


@pytest.mark.parametrize("lora", [False, True])
def test_live_reference_is_a_frozen_copy_or_the_lora_base(setup, tmp_path, lora):
    recipe = recipe_for(setup, tmp_path, mdpo={"reference": "model"},
                        trainer={"lr": 0.05, "max_steps": 2},
                        model={"lora": {"enabled": lora, "r": 4, "alpha": 8, "dropout": 0.0}})
    trainer = mdpo_trainer(recipe, make_pairs(setup)[:4], tmp_path, output_dir=tmp_path / "run")
    assert (trainer.reference is None) == lora
    first = trainer.train_step(trainer.pairs, 0)
    assert first["rewards/chosen"] == pytest.approx(0.0, abs=1e-4) and first["rewards/margin"] == pytest.approx(
        0.0, abs=1e-4)  # policy == reference before any update
    second = trainer.train_step(trainer.pairs, 1)
    assert second["rewards/margin"] > 0.0  # after one update the policy prefers the chosen outputs more
    assert all(p.ref_chosen_logp is None for p in trainer.pairs)  # nothing precomputed in this mode


def test_resumed_run_ends_with_the_same_parameters_as_an_uninterrupted_one(setup, tmp_path):
    def run(out, max_steps, resume="none"):
        recipe = recipe_for(setup, tmp_path, trainer={"lr": 0.02, "max_steps": max_steps, "save_steps": 1,
                                                      "resume": resume, "output_dir": str(out)},
                            mdpo={"pairs_per_step": 2, "sft_gamma": 0.3, "gap_weighting": "normalized"})
        trainer = mdpo_trainer(recipe, make_pairs(setup), tmp_path, output_dir=out)
        trainer.fit()
        return torch.cat([p.detach().flatten() for p in trainer.accelerator.unwrap_model(trainer.model).parameters()])

    straight = run(tmp_path / "straight", 3)
    run(tmp_path / "resumed", 2)
    resumed = run(tmp_path / "resumed", 3, resume="auto")
    rows = [json.loads(line) for line in open(tmp_path / "resumed" / "metrics.jsonl") if '"loss"' in line]
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert torch.equal(straight, resumed)
