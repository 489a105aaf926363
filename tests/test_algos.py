"""GRPO / DPO core algorithms against hand-computed numbers."""

from __future__ import annotations

import math

import pytest
import torch

from rlvid.algos import (
    ADVANTAGE_ESTIMATORS,
    Registry,
    UnknownNameError,
    aggregate_loss,
    compute_advantages,
    compute_dpo_loss,
    compute_policy_loss,
    kl_penalty,
    local_normalizer,
    masked_mean,
    masked_sum,
    selective_log_softmax,
    truncated_is_weights,
)


def close(actual: torch.Tensor, expected, tol: float = 1e-6) -> None:
    expected = torch.as_tensor(expected, dtype=actual.dtype)
    torch.testing.assert_close(actual, expected, atol=tol, rtol=tol)


# ---------------------------------------------------------------- registry


def test_registry_unknown_name_lists_known_names_and_suggests():
    reg = Registry("widget")

    @reg.register("alpha")
    def alpha():
        return 1

    assert reg.get("alpha") is alpha
    with pytest.raises(UnknownNameError, match=r"unknown widget 'alpah'; known: \['alpha'\]. Did you mean 'alpha'"):
        reg.get("alpah")
    with pytest.raises(ValueError, match="already registered"):
        reg.register("alpha")(lambda: 2)


def test_unknown_estimator_names_the_registered_ones():
    with pytest.raises(UnknownNameError, match=r"known: \['grpo', 'rloo'\]"):
        compute_advantages(torch.zeros(2), num_generations=2, estimator="ppo")


# ---------------------------------------------------------------- advantages
# 2 groups of 3. Group A = [1, 0, 0]: mean 1/3, deviations (2/3, -1/3, -1/3),
# unbiased var = (4/9 + 1/9 + 1/9) / 2 = 1/3. Group B = [2, 4, 6]: mean 4, deviations
# (-2, 0, 2), unbiased var = 8 / 2 = 4, std 2.
REWARDS = torch.tensor([1.0, 0.0, 0.0, 2.0, 4.0, 6.0])
CENTRED = [2 / 3, -1 / 3, -1 / 3, -2.0, 0.0, 2.0]


def test_group_scaling_divides_by_each_group_std():
    adv = compute_advantages(REWARDS, num_generations=3, scale="group", eps=0.0)
    s = math.sqrt(1 / 3)
    close(adv, [(2 / 3) / s, (-1 / 3) / s, (-1 / 3) / s, -1.0, 0.0, 1.0])
    close(adv, [1.1547005, -0.5773503, -0.5773503, -1.0, 0.0, 1.0])


def test_batch_scaling_divides_by_the_std_of_all_rewards():
    # all six rewards: mean 13/6; sum of squared deviations = 57 - 6 * (13/6)**2 = 173/6; var = 173/30
    adv = compute_advantages(REWARDS, num_generations=3, scale="batch", eps=0.0)
    close(adv, [c / math.sqrt(173 / 30) for c in CENTRED])


def test_no_scaling_is_mean_centred_only():
    close(compute_advantages(REWARDS, num_generations=3, scale="none"), CENTRED)
    integer_rewards = torch.tensor([1, 0, 0, 2, 4, 6])  # e.g. 0/1 accuracy counts
    close(compute_advantages(integer_rewards, num_generations=3, scale="none"), CENTRED)


def test_eps_is_added_to_the_std():
    adv = compute_advantages(REWARDS, num_generations=3, scale="group", eps=1.0)
    close(adv[3:], [-2 / 3, 0.0, 2 / 3])  # group B: deviation / (2 + 1)


def test_group_ids_need_not_be_contiguous():
    ids = torch.tensor([7, 3, 7, 3, 7, 3])
    rewards = torch.tensor([1.0, 2.0, 0.0, 4.0, 0.0, 6.0])  # group 7 = [1, 0, 0], group 3 = [2, 4, 6]
    adv = compute_advantages(rewards, group_ids=ids, scale="none")
    close(adv, [2 / 3, -2.0, -1 / 3, 0.0, -1 / 3, 2.0])


def test_rloo_uses_the_mean_of_the_other_completions():
    # A: 1 - (0+0)/2 = 1; 0 - (1+0)/2 = -0.5 (twice). B: 2 - 5 = -3; 4 - 4 = 0; 6 - 3 = 3
    adv = compute_advantages(REWARDS, num_generations=3, estimator="rloo", scale="none")
    close(adv, [1.0, -0.5, -0.5, -3.0, 0.0, 3.0])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("estimator", ["grpo", "rloo"])
@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_constant_and_singleton_groups_get_exactly_zero(estimator, scale, dtype):
    # in float64, (0.1 + 0.1 + 0.1) / 3 != 0.1: a rounding residue divided by std + eps would be large
    rewards = torch.tensor([0.1, 0.1, 0.1, 0.7, 0.3, 0.9], dtype=dtype)
    ids = torch.tensor([0, 0, 0, 1, 2, 2])  # constant group, a group of one, a real group
    adv = compute_advantages(rewards, group_ids=ids, estimator=estimator, scale=scale)
    assert not torch.isnan(adv).any()
    assert adv[:4].tolist() == [0.0, 0.0, 0.0, 0.0]
    assert adv[4] < 0 < adv[5]


def test_advantages_reject_partial_groups():
    with pytest.raises(ValueError, match="do not split into groups"):
        compute_advantages(torch.zeros(5), num_generations=3)


def test_estimators_are_registered():
    assert ADVANTAGE_ESTIMATORS.names() == ["grpo", "rloo"]


# ---------------------------------------------------------------- KL


@pytest.mark.parametrize("estimator", ["k1", "k2", "k3", "low_var_kl"])
def test_kl_is_exactly_zero_when_policy_equals_reference(estimator):
    logp = torch.tensor([-0.3, -2.0, -7.5, -0.01])
    assert kl_penalty(logp, logp.clone(), estimator).tolist() == [0.0, 0.0, 0.0, 0.0]


def test_kl_estimators_hand_values():
    logp, ref = torch.tensor([-1.0]), torch.tensor([-2.0])  # log ratio = 1
    close(kl_penalty(logp, ref, "k1"), [1.0])
    close(kl_penalty(logp, ref, "k2"), [0.5])
    close(kl_penalty(logp, ref, "k3"), [math.exp(-1) + 1 - 1])  # exp(ref-logp) - (ref-logp) - 1
    close(kl_penalty(logp, ref, "low_var_kl"), [math.exp(-1)])


def test_low_var_kl_is_clamped_and_k3_is_not():
    logp, ref = torch.tensor([0.0, -30.0]), torch.tensor([-30.0, 0.0])
    close(kl_penalty(logp, ref, "k3"), [math.exp(-30) + 29.0, math.exp(30) - 31.0], tol=1e-5)
    assert kl_penalty(logp, ref, "low_var_kl").tolist() == [10.0, 10.0]


# ---------------------------------------------------------------- aggregation

TOKEN_LOSS = torch.tensor([[1.0, 2.0, 3.0], [4.0, 100.0, 100.0]])  # 100s are padding
MASK = torch.tensor([[1, 1, 1], [1, 0, 0]])


def test_grpo_aggregation_is_mean_of_sequence_means():
    close(aggregate_loss(TOKEN_LOSS, MASK, "grpo"), (2.0 + 4.0) / 2)


def test_dapo_aggregation_is_token_mean():
    close(aggregate_loss(TOKEN_LOSS, MASK, "dapo"), (1 + 2 + 3 + 4) / 4)


def test_dr_grpo_aggregation_divides_by_a_constant_length():
    close(aggregate_loss(TOKEN_LOSS, MASK, "dr_grpo", max_completion_length=4), (1 + 2 + 3 + 4) / (2 * 4))
    with pytest.raises(ValueError, match="max_completion_length"):
        aggregate_loss(TOKEN_LOSS, MASK, "dr_grpo")


def test_local_normalizer_units():
    assert local_normalizer("grpo", MASK).item() == 2  # sequences
    assert local_normalizer("dapo", MASK).item() == 4  # tokens
    assert local_normalizer("dr_grpo", MASK, max_completion_length=4).item() == 8


@pytest.mark.parametrize("mode", ["grpo", "dapo", "dr_grpo"])
def test_micro_batching_with_a_global_normalizer_gives_the_full_batch_gradient(mode):
    torch.manual_seed(0)
    lengths = [1, 6, 2, 5, 3, 6]  # very unequal, so a plain mean of micro-batch means is wrong
    mask = torch.zeros(6, 6, dtype=torch.bool)
    for row, n in enumerate(lengths):
        mask[row, :n] = True
    weights = torch.randn(6, 6, requires_grad=True)
    scale = torch.randn(6, 6)

    full = aggregate_loss(weights * scale, mask, mode, max_completion_length=6)
    (full_grad,) = torch.autograd.grad(full, weights)

    # 3 micro-batches of 2 sequences ("2 ranks x accumulation" is the same sum)
    chunks = [slice(0, 2), slice(2, 4), slice(4, 6)]
    total = sum(local_normalizer(mode, mask[c], max_completion_length=6) for c in chunks)
    summed = sum(aggregate_loss((weights * scale)[c], mask[c], mode, total, 6) for c in chunks)
    (micro_grad,) = torch.autograd.grad(summed, weights)
    close(summed, full.item())
    torch.testing.assert_close(micro_grad, full_grad)

    if mode == "dapo":  # control: averaging per-micro-batch token means is not the batch token mean
        naive = sum(aggregate_loss((weights * scale)[c], mask[c], mode) for c in chunks) / 3
        assert abs(naive.item() - full.item()) > 1e-3


# ---------------------------------------------------------------- policy loss


@pytest.mark.parametrize("level", ["token", "sequence"])
@pytest.mark.parametrize("agg", ["grpo", "dapo", "dr_grpo"])
def test_single_iteration_ratio_is_one_and_gradient_is_reinforce(level, agg):
    torch.manual_seed(1)
    logp = (-torch.rand(3, 5) * 3).requires_grad_()
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0]])
    advantages = torch.tensor([1.5, -0.5, 0.25])

    loss, metrics = compute_policy_loss(
        logp, logp.detach(), advantages, mask, importance_sampling_level=level, loss_agg=agg, max_completion_length=5
    )
    assert metrics["ratio_min"].item() == 1.0 and metrics["ratio_max"].item() == 1.0
    assert metrics["clip_fraction"].item() == 0.0 and metrics["approx_kl"].item() == 0.0
    (grad,) = torch.autograd.grad(loss, logp)

    reinforce = aggregate_loss(-advantages[:, None] * logp, mask, agg, max_completion_length=5)
    (expected_grad,) = torch.autograd.grad(reinforce, logp)
    torch.testing.assert_close(grad, expected_grad)
    # the value is the ratio-1 surrogate -A, aggregated
    close(loss, aggregate_loss(-advantages[:, None].expand(3, 5), mask, agg, max_completion_length=5).item())


def _two_token_case(advantage: float, **kwargs):
    # one sequence, token ratios 1.5 and 0.5
    old = torch.tensor([[-1.0, -1.0]])
    logp = (old + torch.log(torch.tensor([[1.5, 0.5]]))).requires_grad_()
    advantages = torch.tensor([advantage])
    loss, metrics = compute_policy_loss(logp, old, advantages, torch.ones(1, 2), loss_agg="dapo", **kwargs)
    (grad,) = torch.autograd.grad(loss, logp)
    return loss, metrics, grad


def test_clip_positive_advantage_clips_the_high_ratio_only():
    # token 1: -min(1.5, 1.2) = -1.2 (clipped, no gradient); token 2: -min(0.5, 0.8) = -0.5
    loss, metrics, grad = _two_token_case(1.0, epsilon=0.2)
    close(loss, (-1.2 - 0.5) / 2)
    close(grad, [[0.0, -0.5 / 2]])  # d(-r)/dlogp = -r, token mean over 2
    close(metrics["clip_fraction"], 0.5)
    close(metrics["clip_fraction_high"], 0.5)
    close(metrics["clip_fraction_low"], 0.0)


def test_clip_negative_advantage_clips_the_low_ratio_only():
    # token 1: -min(-1.5, -1.2) = 1.5; token 2: -min(-0.5, -0.8) = 0.8 (clipped)
    loss, metrics, grad = _two_token_case(-1.0, epsilon=0.2)
    close(loss, (1.5 + 0.8) / 2)
    close(grad, [[1.5 / 2, 0.0]])
    close(metrics["clip_fraction_low"], 0.5)


def test_clip_higher_widens_only_the_upper_bound():
    # epsilon_high 0.6: token 1 is inside [0.8, 1.6]: -1.5; token 2 as before: -0.5
    loss, metrics, grad = _two_token_case(1.0, epsilon=0.2, epsilon_high=0.6)
    close(loss, (-1.5 - 0.5) / 2)
    close(grad, [[-1.5 / 2, -0.5 / 2]])
    assert metrics["clip_fraction"].item() == 0.0
    # and the lower bound still uses epsilon: A < 0 clips token 2 at 0.8
    loss, _, _ = _two_token_case(-1.0, epsilon=0.2, epsilon_high=0.6)
    close(loss, (1.5 + 0.8) / 2)


def test_sequence_level_ratio_is_the_geometric_mean_broadcast_to_tokens():
    old = torch.tensor([[-1.0, -1.0, -1.0]])
    logp = (old + torch.tensor([[0.2, -0.4, 9.0]])).requires_grad_()  # third token is padding
    mask = torch.tensor([[1, 1, 0]])
    s = math.exp((0.2 - 0.4) / 2)  # 0.904837, inside [0.8, 1.2]
    loss, metrics = compute_policy_loss(logp, old, torch.tensor([1.0]), mask, importance_sampling_level="sequence")
    (grad,) = torch.autograd.grad(loss, logp)
    close(loss, -s)
    close(grad, [[-s / 2, -s / 2, 0.0]])  # sg[s] * grad(logp_t), mean over 2 tokens
    close(metrics["ratio_min"], s)
    close(metrics["ratio_max"], s)

    # token level on the same numbers: exp(0.2) = 1.2214 > 1.2 is clipped, exp(-0.4) is not
    logp_t = (old + torch.tensor([[0.2, -0.4, 9.0]])).requires_grad_()
    loss_t, _ = compute_policy_loss(logp_t, old, torch.tensor([1.0]), mask, importance_sampling_level="token")
    (grad_t,) = torch.autograd.grad(loss_t, logp_t)
    close(loss_t, (-1.2 - math.exp(-0.4)) / 2)
    close(grad_t, [[0.0, -math.exp(-0.4) / 2, 0.0]])


def test_sequence_level_clips_the_whole_sequence():
    old = torch.zeros(1, 2)
    logp = torch.tensor([[0.5, 0.5]], requires_grad=True)  # s = e^0.5 = 1.6487 > 1.2
    loss, metrics = compute_policy_loss(
        logp, old, torch.tensor([1.0]), torch.ones(1, 2), importance_sampling_level="sequence"
    )
    (grad,) = torch.autograd.grad(loss, logp)
    close(loss, -1.2)
    assert grad.tolist() == [[0.0, 0.0]]
    close(metrics["clip_fraction"], 1.0)


def test_rollout_is_weights_multiply_the_token_loss():
    old = torch.tensor([[-1.0, -2.0]])
    logp = old.clone().requires_grad_()
    weights = torch.tensor([[0.5, 2.0]])
    loss, metrics = compute_policy_loss(logp, old, torch.tensor([3.0]), torch.ones(1, 2), rollout_is_weights=weights)
    (grad,) = torch.autograd.grad(loss, logp)
    close(loss, (-3.0 * 0.5 - 3.0 * 2.0) / 2)
    close(grad, [[-1.5 / 2, -6.0 / 2]])
    close(metrics["rollout_is_weight_mean"], 1.25)


def test_truncated_is_weights_cap_the_ratio():
    # exp(-1 - -2) = e = 2.718 -> capped at 2; exp(-2 - -1) = 0.3679
    weights = truncated_is_weights(torch.tensor([-1.0, -2.0]), torch.tensor([-2.0, -1.0]), cap=2.0)
    close(weights, [2.0, math.exp(-1)])


def test_kl_penalty_is_added_per_token():
    old = torch.tensor([[-1.0, -1.0]])
    logp = old.clone().requires_grad_()
    ref = torch.tensor([[-2.0, -1.0]])  # k1 per token: 1, 0
    loss, metrics = compute_policy_loss(
        logp, old, torch.tensor([2.0]), torch.ones(1, 2), ref_logp=ref, beta=0.1, kl_estimator="k1"
    )
    (grad,) = torch.autograd.grad(loss, logp)
    close(loss, ((-2.0 + 0.1 * 1.0) + (-2.0 + 0.0)) / 2)
    close(grad, [[(-2.0 + 0.1) / 2, (-2.0 + 0.1) / 2]])  # d(beta * (logp - ref))/dlogp = beta
    close(metrics["kl_mean"], 0.5)


def test_kl_penalty_vanishes_when_policy_equals_reference():
    logp = torch.tensor([[-1.0, -3.0]], requires_grad=True)
    ones = torch.ones(1, 2)
    with_kl, metrics = compute_policy_loss(logp, logp.detach(), torch.ones(1), ones, ref_logp=logp.detach(), beta=0.5)
    without, _ = compute_policy_loss(logp, logp.detach(), torch.ones(1), ones)
    assert with_kl.item() == without.item()
    assert metrics["kl_mean"].item() == 0.0


def test_beta_without_reference_is_an_error():
    logp = torch.zeros(1, 2)
    with pytest.raises(ValueError, match="ref_logp"):
        compute_policy_loss(logp, logp, torch.ones(1), torch.ones(1, 2), beta=0.1)


def test_all_padding_micro_batch_gives_zero_loss_and_finite_metrics():
    logp = torch.zeros(2, 3, requires_grad=True)
    loss, metrics = compute_policy_loss(logp, logp.detach(), torch.ones(2), torch.zeros(2, 3), loss_agg="dapo")
    assert loss.item() == 0.0
    assert all(torch.isfinite(v) for v in metrics.values())


# ---------------------------------------------------------------- DPO
# Two pairs. policy chosen/rejected = (-1, -2) / (-3, -1.5); reference = (-1.5, -2) / (-2.5, -1).
# chosen log-ratio (0.5, 0.0); rejected log-ratio (-0.5, -0.5); h = (1.0, 0.5).
PC, PR = torch.tensor([-1.0, -2.0]), torch.tensor([-3.0, -1.5])
RC, RR = torch.tensor([-1.5, -2.0]), torch.tensor([-2.5, -1.0])
GAP = torch.tensor([0.4, 0.1])


def softplus(x: float) -> float:  # log(1 + e^x); -log sigmoid(z) = softplus(-z)
    return math.log1p(math.exp(x))


def test_dpo_sigmoid_hand_value_and_metrics():
    # beta 0.5: z = (0.5, 0.25); loss = mean(log(1 + e^-z)) = mean(0.474077, 0.575939)
    loss, m = compute_dpo_loss(PC, PR, RC, RR, beta=0.5)
    close(loss, (softplus(-0.5) + softplus(-0.25)) / 2)
    close(loss, 0.5250081)
    close(m["rewards/chosen"], 0.5 * (0.5 + 0.0) / 2)  # 0.125
    close(m["rewards/rejected"], -0.25)
    close(m["rewards/accuracy"], 1.0)
    close(m["rewards/margin"], (0.5 + 0.25) / 2)


def test_dpo_sigmoid_gradient():
    pc = PC.clone().requires_grad_()
    loss, _ = compute_dpo_loss(pc, PR, RC, RR, beta=0.5)
    (grad,) = torch.autograd.grad(loss, pc)
    # d/dpc of mean(softplus(-beta h)) = -beta * sigmoid(-z) / P
    close(grad, [-0.5 / (1 + math.exp(0.5)) / 2, -0.5 / (1 + math.exp(0.25)) / 2])


def test_dpo_label_smoothing():
    loss, _ = compute_dpo_loss(PC, PR, RC, RR, beta=0.5, label_smoothing=0.1)
    per_pair = [0.9 * softplus(-z) + 0.1 * softplus(z) for z in (0.5, 0.25)]
    close(loss, sum(per_pair) / 2)


def test_ipo_hand_value():
    # target 1 / (2 * 0.5) = 1: (1 - 1)^2 = 0, (0.5 - 1)^2 = 0.25
    loss, _ = compute_dpo_loss(PC, PR, RC, RR, beta=0.5, loss="ipo")
    close(loss, (0.0 + 0.25) / 2)
    with pytest.raises(ValueError, match="label_smoothing"):
        compute_dpo_loss(PC, PR, RC, RR, beta=0.5, loss="ipo", label_smoothing=0.1)


def test_margin_proportional_to_the_metric_gap():
    # margin = 0.5 * gap = (0.2, 0.05)
    loss, _ = compute_dpo_loss(PC, PR, RC, RR, beta=0.5, metric_gap=GAP, margin_scale=0.5)
    close(loss, (softplus(-(0.5 - 0.2)) + softplus(-(0.25 - 0.05))) / 2)
    # IPO: targets 1 + 0.2 = 1.2 and 1 + 0.05 = 1.05: (1 - 1.2)^2 = 0.04, (0.5 - 1.05)^2 = 0.3025
    loss, _ = compute_dpo_loss(PC, PR, RC, RR, beta=0.5, loss="ipo", metric_gap=GAP, margin_scale=0.5)
    close(loss, (0.04 + 0.3025) / 2)


def test_gap_weighting_normalized_and_raw():
    l1, l2 = softplus(-0.5), softplus(-0.25)
    # normalized: mean gap 0.25 -> weights (1.6, 0.4)
    loss, m = compute_dpo_loss(PC, PR, RC, RR, beta=0.5, metric_gap=GAP, gap_weighting="normalized")
    close(loss, (1.6 * l1 + 0.4 * l2) / 2)
    close(m["pair_weight_mean"], 1.0)
    loss, _ = compute_dpo_loss(PC, PR, RC, RR, beta=0.5, metric_gap=GAP, gap_weighting="raw")
    close(loss, (0.4 * l1 + 0.1 * l2) / 2)
    # a dataset-wide mean gap of 0.5 instead of the batch's 0.25 -> weights (0.8, 0.2)
    loss, _ = compute_dpo_loss(PC, PR, RC, RR, beta=0.5, metric_gap=GAP, gap_weighting="normalized", gap_normalizer=0.5)
    close(loss, (0.8 * l1 + 0.2 * l2) / 2)


def test_sft_term_on_chosen():
    nll = torch.tensor([0.7, 1.1])
    loss, m = compute_dpo_loss(PC, PR, RC, RR, beta=0.5, sft_gamma=0.5, chosen_nll=nll)
    close(loss, (softplus(-0.5) + softplus(-0.25)) / 2 + 0.5 * (0.7 + 1.1) / 2)
    close(m["loss/sft"], 0.9)
    with pytest.raises(ValueError, match="chosen_nll"):
        compute_dpo_loss(PC, PR, RC, RR, sft_gamma=0.5)


def test_dpo_gap_options_need_a_valid_gap():
    with pytest.raises(ValueError, match="metric_gap"):
        compute_dpo_loss(PC, PR, RC, RR, margin_scale=1.0)
    with pytest.raises(ValueError, match=">= 0"):
        compute_dpo_loss(PC, PR, RC, RR, metric_gap=torch.tensor([0.1, -0.2]), gap_weighting="raw")


def test_dpo_micro_batches_sum_to_the_full_loss_with_a_pair_normalizer():
    options = {"beta": 0.5, "gap_weighting": "raw"}
    full, _ = compute_dpo_loss(PC, PR, RC, RR, metric_gap=GAP, **options)
    first, second = (
        compute_dpo_loss(PC[[i]], PR[[i]], RC[[i]], RR[[i]], metric_gap=GAP[[i]], normalizer=2, **options)[0]
        for i in range(2)
    )
    close(first + second, full.item())


# ---------------------------------------------------------------- log-probs


def test_selective_log_softmax_matches_log_softmax_gather():
    torch.manual_seed(2)
    logits = torch.randn(2, 4, 11)
    ids = torch.randint(0, 11, (2, 4))
    expected = torch.log_softmax(logits / 0.7, dim=-1).gather(-1, ids[..., None]).squeeze(-1)
    torch.testing.assert_close(selective_log_softmax(logits, ids, temperature=0.7), expected)


def test_masked_mean_and_sum_ignore_masked_values_even_nan():
    values = torch.tensor([[1.0, 3.0, float("nan")], [5.0, float("inf"), 0.0]])
    mask = torch.tensor([[True, True, False], [False, False, False]])
    close(masked_sum(values, mask), 4.0)
    close(masked_mean(values, mask), 2.0)
    close(masked_mean(values, mask, dim=-1), [2.0, 0.0])
