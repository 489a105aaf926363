"""The builtin rewards, by the names recipes use."""

from __future__ import annotations

from collections.abc import Callable

from rewards.accuracy import accuracy_reward
from rewards.dense_caption import dense_caption_reward
from rewards.format import format_reward
from rewards.grounded_qa import grounded_qa_reward
from rewards.overlong import overlong_reward
from rewards.temporal_iou import temporal_iou_reward
from rewards.timing import stream_content_reward, stream_timing_reward

BUILTINS: dict[str, Callable[..., object]] = {
    "format": format_reward,
    "accuracy": accuracy_reward,
    "temporal_iou": temporal_iou_reward,
    "grounded_qa": grounded_qa_reward,
    "dense_caption": dense_caption_reward,
    "overlong": overlong_reward,
    "stream_timing": stream_timing_reward,
    "stream_content": stream_content_reward,
}
