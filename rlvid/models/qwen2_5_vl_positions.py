"""Qwen2.5-VL's 3D (mRoPE) positions as the model was trained with them, for transformers 5.x.

transformers 5.17's `Qwen2_5_VLModel.get_rope_index` departs from the original Qwen2.5-VL code
(and from vLLM, which keeps it) in two ways that change every token after a video:

- the temporal step is `tokens_per_second * int(second_per_grid_t)` (the seconds truncated first)
  instead of `floor(t * second_per_grid_t * tokens_per_second)`: 2.125 s per grid gives 4 per step
  instead of 4.25 (0, 4, 8, 12, 17, ...);
- text after a video continues from its start + max(h, w) / merge instead of from the vision
  block's largest position + 1, which for a multi-frame video is its last temporal position.

Trainer log-probs then differ from vLLM's by ~1e-3 (random tiny model) and more on a real one.
`use_reference_positions(model)` replaces `get_rope_index` on the model's inner Qwen2.5-VL module
with `reference_rope_index`, so the training forward, the hf engine's `generate` (which calls the
same method) and rlvid's prefix/pruning paths all use the original positions. Qwen3-VL needs no fix
(each frame is its own segment, so both rules agree) and is left alone.
"""

from __future__ import annotations

import itertools
import types

import torch

TEXT, IMAGE, VIDEO = 0, 1, 2


def _vision_positions(grid_thw: torch.Tensor, merge: int, step: float, start: int, device) -> torch.Tensor:
    """[3, t*h*w] positions of one image/video block: t scaled by `step` (floored), h and w as indices."""
    t, h, w = (int(x) for x in grid_thw.tolist())
    h, w = h // merge, w // merge
    t_index = (torch.arange(t, device=device, dtype=torch.float64) * step).long()
    pos_t = t_index.view(-1, 1, 1).expand(t, h, w)
    pos_h = torch.arange(h, device=device).view(1, -1, 1).expand(t, h, w)
    pos_w = torch.arange(w, device=device).view(1, 1, -1).expand(t, h, w)
    return torch.stack([pos_t, pos_h, pos_w]).reshape(3, -1) + start


def reference_rope_index(self, input_ids: torch.Tensor, mm_token_type_ids: torch.Tensor | None = None,
                         image_grid_thw: torch.Tensor | None = None, video_grid_thw: torch.Tensor | None = None,
                         second_per_grid_ts: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                         **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop-in for `Qwen2_5_VLModel.get_rope_index` with the original rules (module docstring).

    Returns ([3, B, L] position ids, [B, 1] deltas: largest position + 1 - number of tokens).
    """
    if mm_token_type_ids is None:
        mm_token_type_ids = torch.zeros_like(input_ids)
        mm_token_type_ids[input_ids == self.config.image_token_id] = IMAGE
        mm_token_type_ids[input_ids == self.config.video_token_id] = VIDEO
    merge = self.config.vision_config.spatial_merge_size
    tokens_per_second = self.config.vision_config.tokens_per_second
    position_ids = torch.zeros(3, *input_ids.shape, dtype=input_ids.dtype, device=input_ids.device)
    grids = {IMAGE: iter(image_grid_thw if image_grid_thw is not None else []),
             VIDEO: iter(video_grid_thw if video_grid_thw is not None else [])}
    seconds = iter(second_per_grid_ts.tolist() if second_per_grid_ts is not None else [])
    deltas = []
    for row in range(input_ids.shape[0]):
        keep = attention_mask[row].bool() if attention_mask is not None else torch.ones_like(input_ids[row], dtype=bool)
        types_row = mm_token_type_ids[row][keep].tolist()
        pieces, current = [], 0
        for kind, group in itertools.groupby(types_row):
            length = len(list(group))
            if kind == TEXT:
                block = torch.arange(length, device=input_ids.device).view(1, -1).expand(3, -1) + current
            else:
                grid = next(grids[int(kind)])
                step = next(seconds, 1.0) * tokens_per_second if kind == VIDEO else 1.0
                block = _vision_positions(grid, merge, step, current, input_ids.device)
                if block.shape[1] != length:
                    raise ValueError(f"row {row}: {length} placeholder tokens but grid {grid.tolist()} makes "
                                     f"{block.shape[1]}")
            pieces.append(block)
            current = int(block.max()) + 1
        positions = torch.cat(pieces, dim=1) if pieces else torch.zeros(3, 0, dtype=torch.long)
        position_ids[:, row, keep] = positions.to(position_ids.dtype)
        deltas.append(current - len(types_row))
    return position_ids, torch.tensor(deltas, device=input_ids.device).unsqueeze(1)


def qwen2_5_vl_core(model: torch.nn.Module) -> torch.nn.Module | None:
    """The inner `Qwen2_5_VLModel` of a (maybe wrapped) Qwen2.5-VL model, else None."""
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLModel

    return next((m for m in model.modules() if isinstance(m, Qwen2_5_VLModel)), None)


def use_reference_positions(model: torch.nn.Module) -> torch.nn.Module:
    """Give a Qwen2.5-VL model the original mRoPE positions (no-op for other models); returns `model`."""
    core = qwen2_5_vl_core(model)
    if core is not None:
        core.get_rope_index = types.MethodType(reference_rope_index, core)
    return model
