"""Per-token log-probs of completions under a model, for video prompts.

Shared by GRPO's old / reference / update passes, SFT's cross-entropy and M-DPO: one place that
knows how prompt+completion rows are laid out. A step's prompts are run through the processor
once (`encode_prompts`); every pass then assembles its micro-batches from those per-prompt
tensors (`collate`), so a prompt repeated G times is not re-processed G times per pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rlvid.algos import selective_log_softmax
from rlvid.data.model_inputs import VideoInputBuilder, append_completions
from rlvid.data.sample import Sample
from rlvid.models.token_prune import TokenPruner, pruned_forward

VISUAL_KEYS = {"pixel_values_videos": "video_grid_thw", "pixel_values": "image_grid_thw"}
# per-video / per-image tensors (one row per visual item) and the placeholder token that counts the item's tokens
PER_ITEM_KEYS = {"video_grid_thw": "video", "second_per_grid_ts": "video", "image_grid_thw": "image"}


@dataclass
class EncodedPrompt:
    """One prompt's processor outputs, unpadded: token-level tensors [L], visual tensors of this prompt only."""

    tokens: dict[str, torch.Tensor]
    visual: dict[str, torch.Tensor]
    per_row: dict[str, torch.Tensor]


def encode_prompts(builder: VideoInputBuilder, samples: list[Sample]) -> list[EncodedPrompt]:
    """Run the processor once over `samples` and split its outputs per prompt.

    A prompt may hold several videos (a streamed video is several chunks): each prompt's videos are
    the next ones in order whose placeholder tokens add up to the prompt's count of video tokens.
    """
    if not samples:
        return []
    texts = [builder.prompt_text(s) for s in samples]
    videos = [builder.video(s) for s in samples]
    batch = builder.process_prompts(texts, videos, padding_side="right")  # same call as prompt_with_completions
    return split_per_prompt(batch, builder.processor)


def split_per_prompt(batch: dict[str, torch.Tensor], processor) -> list[EncodedPrompt]:
    """Processor outputs of a right-padded batch -> one `EncodedPrompt` per row."""
    lengths = batch["attention_mask"].sum(1).tolist()
    seq_len = batch["input_ids"].shape[1]
    items = {kind: _items_per_row(batch, processor, kind) for kind in ("video", "image")}
    out = []
    for r, length in enumerate(lengths):
        tokens, visual, per_row = {}, {}, {}
        for key, value in batch.items():
            if not isinstance(value, torch.Tensor):
                continue
            if key in VISUAL_KEYS:
                kind = "video" if key == "pixel_values_videos" else "image"
                first, last = items[kind][r]
                grid = batch[VISUAL_KEYS[key]]
                patches = grid.prod(-1)
                visual[key] = value[int(patches[:first].sum()):int(patches[:last].sum())]
            elif key in PER_ITEM_KEYS:
                first, last = items[PER_ITEM_KEYS[key]][r]
                visual[key] = value[first:last]
            elif value.ndim >= 2 and value.shape[0] == len(lengths) and value.shape[1] == seq_len:
                tokens[key] = value[r, :length]
            elif value.shape[:1] == (len(lengths),):
                per_row[key] = value[r:r + 1]
        out.append(EncodedPrompt(tokens, visual, per_row))
    return out


def _items_per_row(batch: dict[str, torch.Tensor], processor, kind: str) -> list[tuple[int, int]]:
    """[first, last) visual-item indices of each row, matched by placeholder-token counts."""
    rows = batch["input_ids"].shape[0]
    grid = batch.get(f"{kind}_grid_thw")
    if grid is None:
        return [(0, 0)] * rows
    token_id = getattr(processor, f"{kind}_token_id")
    merge = int(getattr(processor, f"{kind}_processor").merge_size)
    per_item = (grid.prod(-1) // merge**2).tolist()
    wanted = (batch["input_ids"] == token_id).sum(1).tolist()
    spans, item = [], 0
    for r in range(rows):
        first, total = item, 0
        while total < wanted[r] and item < len(per_item):
            total += per_item[item]
            item += 1
        if total != wanted[r]:
            raise ValueError(f"row {r}: {wanted[r]} {kind} tokens do not match its {kind}s' grids")
        spans.append((first, item))
    return spans


def collate(prompts: list[EncodedPrompt], completion_ids: list[list[int]], pad_id: int
            ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Right-padded rows prompt_i + completion_i, and the bool mask [B, T] of completion tokens."""
    length = max(int(p.tokens["input_ids"].shape[0]) for p in prompts)
    padded = {}
    for key in prompts[0].tokens:
        fill = pad_id if key == "input_ids" else 0
        rows = [torch.nn.functional.pad(p.tokens[key], (0, length - p.tokens[key].shape[0]), value=fill)
                for p in prompts]
        padded[key] = torch.stack(rows)
    for key in prompts[0].visual:
        padded[key] = torch.cat([p.visual[key] for p in prompts])
    for key in prompts[0].per_row:
        padded[key] = torch.cat([p.per_row[key] for p in prompts])
    return append_completions(padded, completion_ids, pad_id)


def to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def completion_logprobs(model, inputs: dict[str, torch.Tensor], completion_mask: torch.Tensor,
                        temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """log pi(token) for the completion region: ([B, T'] log-probs, [B, T'] mask).

    Logits at position t predict token t+1. Only positions from the earliest completion token
    on are projected to the vocabulary (`logits_to_keep`), so the video prompt costs no lm_head
    time or [B, T, V] memory. `temperature` divides the logits as sampling did.
    """
    device = completion_mask.device
    has = completion_mask.any(0).nonzero()
    start = int(has[0]) if has.numel() else completion_mask.shape[1] - 1
    start = max(start, 1)
    keep = completion_mask.shape[1] - start + 1
    pruner = TokenPruner.of(model)
    if pruner is not None:  # visual tokens dropped (data.video.token_drop.mode: token)
        logits = pruned_forward(model, inputs, pruner, logits_to_keep=keep, use_cache=False)
    else:
        logits = model(**inputs, logits_to_keep=keep, use_cache=False).logits
    ids = inputs["input_ids"][:, start:].to(device)
    logp = selective_log_softmax(sampled_logits(model, logits[:, :-1]), ids, temperature=temperature)
    return logp, completion_mask[:, start:]


def sampled_logits(model, logits: torch.Tensor) -> torch.Tensor:
    """fp32 logits of the distribution the rollout engines sample from: vision placeholders at -inf.

    Both engines forbid placeholder tokens (hf: `suppress_tokens`; vLLM: the lowest logit bias),
    so the trainer's log-probs and ratios must leave them out of the softmax too.
    """
    from rlvid.rollout.hf import placeholder_token_ids

    out = logits.float()
    ids = placeholder_token_ids(getattr(model, "module", model))
    if ids:
        index = torch.tensor(ids, device=out.device)
        fill = out.index_fill_ if out is not logits else out.index_fill  # in place on .float()'s own copy
        out = fill(-1, index, float("-inf"))
    return out
