"""Reward functions for rlvid, their registry, and how a recipe's rewards are combined.

Contract (DESIGN.md "Reward function", the TRL convention): a reward is a plain callable
`fn(completions: list[str], **columns) -> list[float | None]` (or a dict of named lists of
sub-scores), columns aligned with the completions; None means "not applicable". See README.md.
"""

from rewards.accuracy import accuracy_reward, mean_relative_accuracy, score_answer
from rewards.builtins import BUILTINS
from rewards.captions import CaptionScorer, get_caption_scorer
from rewards.combine import ON_ERROR, RewardOutput, RewardSet, compose_rewards
from rewards.dense_caption import dense_caption_reward
from rewards.errors import NonFiniteRewardError, RewardError
from rewards.events import as_events, parse_events
from rewards.format import format_reward
from rewards.grounded_qa import grounded_qa_reward
from rewards.iou import interval_iop, interval_iou, merge_intervals, union_iop, union_iou
from rewards.overlong import overlong_reward
from rewards.parsing import extract_answer, parse_interval, parse_intervals, parse_number, parse_option
from rewards.registry import (
    ENTRY_POINT_GROUP,
    BoundReward,
    RewardSpec,
    available_rewards,
    build_reward,
    parse_reward_spec,
    register_reward,
    resolve_reward,
)
from rewards.scoring import SAMPLE_COLUMNS, meta_columns, reward_state, sample_columns, score
from rewards.soda import soda_c
from rewards.temporal_iou import temporal_iou_reward

__all__ = [
    "BUILTINS",
    "ENTRY_POINT_GROUP",
    "ON_ERROR",
    "SAMPLE_COLUMNS",
    "BoundReward",
    "CaptionScorer",
    "NonFiniteRewardError",
    "RewardError",
    "RewardOutput",
    "RewardSet",
    "RewardSpec",
    "accuracy_reward",
    "as_events",
    "available_rewards",
    "build_reward",
    "compose_rewards",
    "dense_caption_reward",
    "extract_answer",
    "format_reward",
    "get_caption_scorer",
    "grounded_qa_reward",
    "interval_iop",
    "interval_iou",
    "mean_relative_accuracy",
    "meta_columns",
    "merge_intervals",
    "overlong_reward",
    "parse_events",
    "parse_interval",
    "parse_intervals",
    "parse_number",
    "parse_option",
    "parse_reward_spec",
    "register_reward",
    "resolve_reward",
    "reward_state",
    "sample_columns",
    "score",
    "score_answer",
    "soda_c",
    "temporal_iou_reward",
    "union_iop",
    "union_iou",
]
