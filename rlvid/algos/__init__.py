"""GRPO / DPO building blocks: pure torch functions on log-prob, reward and mask tensors.

Each family is a `Registry`; the recipe names the member to use (trainer.advantage,
trainer.kl_estimator, trainer.loss_agg, mdpo.loss, ...). Add one with a decorator, e.g.
`@ADVANTAGE_ESTIMATORS.register("my_estimator")`.
"""

from rlvid.algos.advantages import ADVANTAGE_ESTIMATORS, compute_advantages
from rlvid.algos.aggregation import LOSS_AGGREGATIONS, aggregate_loss, local_normalizer
from rlvid.algos.dpo_loss import DPO_LOSSES, compute_dpo_loss
from rlvid.algos.kl import KL_ESTIMATORS, kl_penalty
from rlvid.algos.logprobs import masked_mean, masked_sum, selective_log_softmax
from rlvid.algos.policy_loss import (
    POLICY_LOSSES,
    compute_policy_loss,
    log_importance_ratio,
    truncated_is_weights,
)
from rlvid.algos.registry import Registry, UnknownNameError
from rlvid.algos.rollout_correction import IS_MODES, rollout_is

__all__ = [
    "ADVANTAGE_ESTIMATORS",
    "DPO_LOSSES",
    "KL_ESTIMATORS",
    "LOSS_AGGREGATIONS",
    "POLICY_LOSSES",
    "IS_MODES",
    "Registry",
    "UnknownNameError",
    "aggregate_loss",
    "compute_advantages",
    "compute_dpo_loss",
    "compute_policy_loss",
    "kl_penalty",
    "local_normalizer",
    "log_importance_ratio",
    "masked_mean",
    "masked_sum",
    "rollout_is",
    "selective_log_softmax",
    "truncated_is_weights",
]
