"""A Qwen-VL policy (Qwen2.5-VL, Qwen3-VL) as a streaming model: `stream_rollouts` and streaming GRPO run it.

`rlvid.rollout.streaming` needs `vocab`, `embed(ids, frames)` and `forward(embeds, cache)`;
`QwenVLStream` gives them to a Hugging Face Qwen-VL model:

- `embed` turns a call's tokens and its chunk's frames into a `StreamPiece`: the tokens and
  their video blocks (pixel patches and visual features from `StreamVision`: each chunk through
  the processor and the vision tower once, shared by every branch that feeds it).
- `forward(piece, cache)` feeds the piece once on top of the KV cache. Its 3-D M-RoPE positions
  are the model's own `get_rope_index` on the piece's tokens, shifted to continue from the
  cache's next position (kept on the cache, so a forked branch carries its own): every rule of
  those positions is relative to where a text or video block starts, so the positions equal
  those of one forward of the whole sequence, as if the stream had been one prompt in the
  `data.video.streaming` format. Qwen2.5-VL gets its original positions
  (`models/qwen2_5_vl_positions.py`).
- `trajectory_logits(trajs)`: the trainer's recompute, one padded forward of whole trajectories
  (positions from position 0, the trajectory's frames cut into its video blocks).
- `drop_threshold` drops the visual tokens that barely changed since the previous chunk
  (`models/stream_token_drop.py`, TimeChat-Online's DTD): they stay in the token sequence, which
  keeps their positions, but are never fed; logits at their columns are zeros.

The state dict is the wrapped Hugging Face model's, under its own names, so a training checkpoint's
model.safetensors loads with `from_pretrained` and `rlvid export` (`streaming.model: qwen_vl` recipes).

`tokens_fed` counts the positions computed (the KV cache's growth); `pop_stats` reports it with
the vision reuse and token dropping counters.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from rlvid.config.schema import ModelConfig
from rlvid.models.loading import load_policy, load_processor
from rlvid.models.qwen2_5_vl_positions import use_reference_positions
from rlvid.models.stream_token_drop import StreamDrop
from rlvid.models.trainable import apply_trainable
from rlvid.models.vision_reuse import VisionFeatureCache, find_vl_core
from rlvid.policy.stream_vision import BlockVision, StreamVision
from rlvid.policy.stream_vl_vocab import QwenVLStreamVocab


@dataclass
class StreamPiece:
    """The tokens [L] of one forward and the video blocks of their runs of video tokens, in order."""

    ids: torch.Tensor
    blocks: list[BlockVision]


@dataclass
class StreamState:
    """What a KV cache needs besides its keys and values: the next M-RoPE position and the DTD reference."""

    next_position: int = 0
    reference: torch.Tensor | None = None


@dataclass
class _Row:
    """One sequence laid out for the language model (only the tokens fed)."""

    keep: torch.Tensor  # [L] bool over the piece's tokens
    embeds: torch.Tensor  # [L', hidden]
    positions: torch.Tensor  # [3, L']
    visual: torch.Tensor  # [L'] bool: video positions (Qwen3-VL's deepstack adds to them)
    deepstack: list[torch.Tensor] | None
    state: StreamState


def _strip_model_prefix(module, state_dict, prefix, local_metadata) -> None:
    """`<prefix>model.<key>` -> `<prefix><key>`: the wrapped model's own names."""
    inner = prefix + "model."
    for key in [k for k in state_dict if k.startswith(inner)]:
        state_dict[prefix + key[len(inner):]] = state_dict.pop(key)


def _add_model_prefix(module, state_dict, prefix, local_metadata, strict, missing, unexpected, errors) -> None:
    """The inverse of `_strip_model_prefix`, before the keys are matched to parameters."""
    module.__dict__["_load_prefix"] = prefix
    for key in [k for k in state_dict if k.startswith(prefix)]:
        state_dict[prefix + "model." + key[len(prefix):]] = state_dict.pop(key)


def _report_stripped_names(module, incompatible) -> None:
    """Missing / unexpected keys named as `state_dict()` names them (safetensors' `load_model` matches the two)."""
    prefix = module.__dict__.get("_load_prefix", "")
    inner = prefix + "model."
    for names in (incompatible.missing_keys, incompatible.unexpected_keys):
        names[:] = [prefix + n[len(inner):] if n.startswith(inner) else n for n in names]


class QwenVLStream(nn.Module):
    """The streaming interface over a Qwen-VL `model` and its `processor` (module docstring)."""

    def __init__(self, model: nn.Module, processor, *, fps: float, reuse_vision: bool = True,
                 drop_threshold: float | None = None, silent_token: str = "<|endoftext|>"):
        super().__init__()
        self.model = use_reference_positions(model)
        self.processor = processor  # what a saved model folder holds next to the weights
        self.__dict__["core"] = find_vl_core(model)  # not a second submodule: state_dict keeps one copy
        # The state dict is the Hugging Face model's (no `model.` prefix), so a training checkpoint's
        # model.safetensors (accelerate's save_state) is what from_pretrained reads.
        self.register_state_dict_post_hook(_strip_model_prefix)
        self.register_load_state_dict_pre_hook(_add_model_prefix)
        self.register_load_state_dict_post_hook(_report_stripped_names)
        seam = VisionFeatureCache.installed(model)
        if seam is not None and seam.pruner is not None:
            raise ValueError("the model's vision seam drops tokens (token_drop.mode: token); streaming drops them "
                             "itself: use drop_threshold instead")
        self.vision = StreamVision(self.core, processor, reuse=reuse_vision)
        self.drop = None if drop_threshold is None else StreamDrop.from_processor(processor, drop_threshold)
        self.vocab = QwenVLStreamVocab(processor, model.get_output_embeddings().weight.shape[0], fps,
                                       self.vision.tokens_per_patch, silent_token=silent_token)
        self.tokens_fed = 0
        self.visual_tokens_kept = 0
        self.visual_tokens_total = 0

    @classmethod
    def from_pretrained(cls, path: str, *, fps: float, model_config: ModelConfig | None = None,
                        **options) -> QwenVLStream:
        """The streaming model of the Qwen-VL folder (or hub id) at `path`, loaded and made trainable as a recipe's
        `model:` section says (dtype, attention, freeze_*, lora, gradient checkpointing, trust_remote_code;
        default ModelConfig()); `options` as the constructor."""
        config = dataclasses.replace(model_config or ModelConfig(), path=path)
        policy = apply_trainable(load_policy(config), config)
        return cls(policy, load_processor(path, config.trust_remote_code), fps=fps, **options)

    # ------------------------------------------------------------------ the rollout interface

    def embed(self, ids: Sequence[int] | torch.Tensor, frames: torch.Tensor | None = None) -> StreamPiece:
        """The piece of `ids` whose video runs are `frames`, cut by run (one per chunk; Qwen3-VL: per patch)."""
        ids = torch.as_tensor(ids, dtype=torch.long).reshape(-1)
        runs = self.vocab.video_runs(ids)
        if not runs:
            if frames is not None and len(frames):
                raise ValueError(f"{len(frames)} frames but no video tokens")
            return StreamPiece(ids, [])
        if frames is None or not len(frames):
            raise ValueError(f"{len(runs)} runs of video tokens but no frames")
        per_patch = self.vision.tokens_per_patch(frames)
        lengths = [end - start for start, end in runs]
        if any(n % per_patch for n in lengths):
            raise ValueError(f"runs of {lengths} video tokens are not whole temporal patches of {per_patch} tokens")
        return StreamPiece(ids, self.vision.blocks(frames, [n // per_patch for n in lengths]))

    def forward(self, piece: StreamPiece, past_key_values=None, attention_mask: torch.Tensor | None = None):
        """Logits [1, L', V] of the fed tokens of `piece` (its dropped video tokens are not fed) and the cache."""
        if attention_mask is not None:
            raise ValueError("QwenVLStream.forward takes one piece; batches go through trajectory_logits")
        state = getattr(past_key_values, "rlvid_stream", None) or StreamState()
        row = self._row(piece, state)
        logits, cache = self._language_model(row.embeds[None], row.positions[:, None], past_key_values, None,
                                             row.visual[None], row.deepstack)
        if cache is not None:
            cache.rlvid_stream = row.state
        return logits, cache

    # ------------------------------------------------------------------ the trainer's recompute

    def trajectory_logits(self, trajs: Sequence) -> torch.Tensor:
        """Logits [B, T, V] over each trajectory's `ids` (right-padded; zeros at padding and dropped tokens),
        from one forward of the whole trajectories."""
        rows = [self._row(self.embed(t.ids, t.frames), StreamState()) for t in trajs]
        width = max(len(r.embeds) for r in rows)
        hidden = rows[0].embeds.shape[-1]
        embeds = rows[0].embeds.new_zeros(len(rows), width, hidden)
        positions = torch.ones(3, len(rows), width, dtype=torch.long)
        attention = torch.zeros(len(rows), width, dtype=torch.long)
        visual = torch.zeros(len(rows), width, dtype=torch.bool)
        for i, r in enumerate(rows):
            n = len(r.embeds)
            embeds[i, :n], positions[:, i, :n], attention[i, :n], visual[i, :n] = r.embeds, r.positions, 1, r.visual
        deepstack = None
        if rows[0].deepstack is not None:
            deepstack = [torch.cat([r.deepstack[k] for r in rows]) for k in range(len(rows[0].deepstack))]
        logits, _ = self._language_model(embeds, positions.to(embeds.device), None, attention.to(embeds.device),
                                         visual, deepstack)
        longest = max(len(t.ids) for t in trajs)
        out = logits.new_zeros(len(rows), longest, logits.shape[-1])
        for i, r in enumerate(rows):
            cols = r.keep.nonzero().flatten().to(logits.device)
            out[i, cols] = logits[i, :len(cols)]
        return out

    def kept(self, ids: Sequence[int], frames: torch.Tensor) -> list[bool]:
        """Which tokens of a whole trajectory are fed (False: video tokens dropped by DTD)."""
        with torch.no_grad():
            return self._row(self.embed(ids, frames), StreamState(), count=False).keep.tolist()

    def pop_stats(self) -> dict[str, int]:
        """Positions fed, vision blocks computed / reused and visual tokens kept / total since the last call."""
        out = {"tokens_fed": self.tokens_fed, "vision_blocks_computed": self.vision.stats.blocks_computed,
               "vision_blocks_reused": self.vision.stats.blocks_reused,
               "visual_tokens_kept": self.visual_tokens_kept, "visual_tokens_total": self.visual_tokens_total}
        self.tokens_fed = self.visual_tokens_kept = self.visual_tokens_total = 0
        self.vision.stats.blocks_computed = self.vision.stats.blocks_reused = 0
        return out

    # ------------------------------------------------------------------ layout

    def _row(self, piece: StreamPiece, state: StreamState, count: bool = True) -> _Row:
        """The fed tokens of `piece` after `state`: keep mask, embeddings, positions, visual mask, deepstack."""
        ids, vocab = piece.ids, self.vocab
        device = self.core.language_model.embed_tokens.weight.device
        positions = self._positions(piece) + state.next_position
        keep = torch.ones(len(ids), dtype=torch.bool)
        reference, features, deepstack = state.reference, [], []
        for (start, end), block in zip(vocab.video_runs(ids), piece.blocks, strict=True):
            mask = torch.ones(end - start, dtype=torch.bool)
            if self.drop is not None:
                mask, reference = self.drop.keep(block.pixels, block.grid, reference)
            keep[start:end] = mask
            features.append(block.embeds[mask.to(block.embeds.device)])
            if block.deepstack is not None:
                deepstack.append([d[mask.to(d.device)] for d in block.deepstack])
            if count:
                self.visual_tokens_kept += int(mask.sum())
                self.visual_tokens_total += len(mask)
        fed = ids[keep].to(device)
        embeds = self.core.get_input_embeddings()(fed)
        visual = fed == vocab.frame
        if features:
            embeds = embeds.masked_scatter(visual[:, None], torch.cat(features).to(embeds.dtype))
        layers = None
        if deepstack:
            layers = [torch.cat([block[k] for block in deepstack]) for k in range(len(deepstack[0]))]
        if count:
            self.tokens_fed += int(keep.sum())
        next_position = int(positions[:, -1].max()) + 1 if len(ids) else state.next_position
        return _Row(keep, embeds, positions[:, keep].to(device), visual, layers, StreamState(next_position, reference))

    def _positions(self, piece: StreamPiece) -> torch.Tensor:
        """[3, L] M-RoPE positions of the piece's tokens from 0: the model's own `get_rope_index`."""
        ids = piece.ids
        if not piece.blocks:
            return torch.arange(len(ids)).expand(3, -1)
        types = (ids == self.vocab.frame).long() * 2  # 2: video (the processors' mm_token_type_ids)
        grids = torch.tensor([b.grid for b in piece.blocks], dtype=torch.long)
        seconds = torch.full((len(grids),), self.vocab.temporal_patch / self.vocab.fps)
        positions, _ = self.core.get_rope_index(ids[None], mm_token_type_ids=types[None], video_grid_thw=grids,
                                                second_per_grid_ts=seconds)
        return positions[:, 0].cpu()

    def _language_model(self, embeds, positions, cache, attention, visual, deepstack):
        extra = {}
        if deepstack is not None and bool(visual.any()):
            extra = {"visual_pos_masks": visual.to(embeds.device), "deepstack_visual_embeds": deepstack}
        out = self.core.language_model(inputs_embeds=embeds, position_ids=positions, attention_mask=attention,
                                       past_key_values=cache, use_cache=cache is not None, **extra)
        return self.model.get_output_embeddings()(out.last_hidden_state), out.past_key_values
