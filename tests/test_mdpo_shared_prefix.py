"""M-DPO with the shared prompt: a pair's chosen and rejected rows (and the SFT term) run the prompt and the
video once, and give the plain 2P-row forward's sequence log-probs, loss and gradients (to 1e-5)."""

from __future__ import annotations

import pytest
import torch
from test_mdpo_trainer import make_pairs, recipe_for
from tiny_setup import make_tiny_setup

from rlvid.algos import compute_dpo_loss
from rlvid.app.compose import mdpo_trainer
from rlvid.trainers.mdpo.batch import pair_micro_batches, sequence_logps


@pytest.fixture(scope="module", params=["qwen2_5_vl", "qwen3_vl"])
def trainer(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"mdpo-shared-{request.param}")
    setup = make_tiny_setup(tmp, arch=request.param)
    recipe = recipe_for(setup, tmp, mdpo={"reference": "model", "sft_gamma": 0.5})
    return mdpo_trainer(recipe, make_pairs(setup), tmp, output_dir=tmp / "run")


def both_layouts(trainer):
    """The six pairs as micro-batches of 3 pairs, plain and with the shared prefix."""
    policy = trainer.chain_policy
    plain = pair_micro_batches(policy, trainer.pairs, 3, shared_prefix=False)
    shared = pair_micro_batches(policy, trainer.pairs, 3, shared_prefix=True)
    return plain, shared


def test_the_shared_layout_runs_each_distinct_prompt_once(trainer):
    plain, shared = both_layouts(trainer)
    assert all(b.seq.shared is None for b in plain)
    # micro-batch 0: pairs 0 and 1 share a prompt -> 2 prompt forwards for 6 rows; micro-batch 1: 3 for 6
    assert [b.seq.shared.prefix["input_ids"].shape[0] for b in shared] == [2, 3]
    assert [b.seq.shared.prefix["video_grid_thw"].shape[0] for b in shared] == [2, 3]  # the vision tower too
    assert trainer.chain_policy.shared_prefix and trainer.reference.shared_prefix  # the recipe's default reaches both


def test_sequence_logps_and_reference_equal_the_plain_forward(trainer):
    plain, shared = both_layouts(trainer)
    model = trainer.accelerator.unwrap_model(trainer.model).eval()
    for who in (trainer.chain_policy, trainer.reference):
        for p, s in zip(plain, shared, strict=True):
            a, b = sequence_logps(who, p), sequence_logps(who, s)
            for name in ("chosen", "rejected", "chosen_nll"):
                # sums near -65..-100 are resolved to one fp32 ulp (7.6e-6..1.5e-5): 1e-5 plus 1e-6 relative
                torch.testing.assert_close(getattr(b, name), getattr(a, name), rtol=1e-6, atol=1e-5, msg=name)
    model.train()


def test_dpo_loss_and_gradients_equal_the_plain_forward(trainer):
    plain, shared = both_layouts(trainer)
    model = trainer.accelerator.unwrap_model(trainer.model)
    model.train()
    refs = [(torch.full((b.num_pairs,), -30.0), torch.full((b.num_pairs,), -31.0)) for b in plain]
    results = []
    for layout in (plain, shared):
        model.zero_grad()
        total = 0.0
        for b, (rc, rr) in zip(layout, refs, strict=True):
            logps = sequence_logps(trainer.chain_policy, b, grad=True)
            loss, _ = compute_dpo_loss(logps.chosen, logps.rejected, rc, rr, beta=0.1, sft_gamma=0.5,
                                       chosen_nll=logps.chosen_nll, normalizer=6)
            loss.backward()
            total += float(loss.detach())
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        results.append((total, grads))
    (loss_a, grads_a), (loss_b, grads_b) = results
    assert loss_b == pytest.approx(loss_a, abs=1e-5)
    assert grads_a.keys() == grads_b.keys() and any("visual" in n for n in grads_a)
    for name, g in grads_a.items():
        torch.testing.assert_close(grads_b[name], g, rtol=1e-4, atol=1e-5, msg=name)
    model.zero_grad()
