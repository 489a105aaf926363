"""Qwen2.5-VL's original mRoPE positions (rlvid/models/qwen2_5_vl_positions.py), which vLLM uses too."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from rlvid.models.qwen2_5_vl_positions import reference_rope_index

CORE = SimpleNamespace(config=SimpleNamespace(image_token_id=7, video_token_id=8, vision_config=SimpleNamespace(
    spatial_merge_size=2, tokens_per_second=2)))


def positions(types: list[int], video_grid=None, seconds=None, mask=None):
    ids = torch.tensor([[{0: 1, 1: 7, 2: 8}[t] for t in types]])
    return reference_rope_index(CORE, ids, torch.tensor([types]), video_grid_thw=video_grid,
                                second_per_grid_ts=seconds, attention_mask=mask)


def test_video_time_steps_are_floored_products_and_text_continues_after_the_largest_position():
    # 3 text tokens, a video of grid (t=5, h=2, w=4) -> 5 x 1 x 2 tokens, 2 text tokens
    types = [0, 0, 0] + [2] * 10 + [0, 0]
    pos, delta = positions(types, torch.tensor([[5, 2, 4]]), torch.tensor([2.125]))
    video = pos[:, 0, 3:13]
    assert video[0].tolist() == [3 + t for t in (0, 0, 4, 4, 8, 8, 12, 12, 17, 17)]  # floor(t * 2.125 * 2)
    assert video[1].tolist() == [3] * 10 and video[2].tolist() == [3, 4] * 5
    assert pos[:, 0, 13].tolist() == [21, 21, 21]  # largest position (20) + 1, not start + max(h, w) / 2
    assert delta.tolist() == [[23 - 15]]  # next position (22 + 1) - 15 tokens


def test_text_only_rows_count_up_and_padding_is_left_at_zero():
    pos, delta = positions([0, 0, 0, 0], mask=torch.tensor([[0, 1, 1, 1]]))
    assert pos[0, 0].tolist() == [0, 0, 1, 2] and delta.tolist() == [[3 - 3]]
