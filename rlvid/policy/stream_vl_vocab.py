"""The streaming vocabulary of a Qwen-VL policy: which tokens decide, which carry a chunk, and how a chunk reads.

`rlvid.rollout.streaming` needs a few token ids (`bos`, `silent`, `end`, `pad`, `frame`), text
encoding, and the tokens that introduce a chunk. On a Qwen-VL tokenizer they are:

- `bos` `<|im_start|>`, `end` `<|im_end|>` (a response's end), `silent` `<|endoftext|>` by
  default (any single token can be named), `frame` `<|video_pad|>`.
- A chunk in the `data.video.streaming` format (docs/efficiency.md), with the times of the stream:
  Qwen2.5-VL: the time label as text, then the chunk as one video,
  `<t=2.0s><|vision_start|><|video_pad|>...<|vision_end|>`; Qwen3-VL (whose processor writes
  every temporal patch's time itself): the chunk as one video in its native layout,
  `<|vision_start|><2.5 seconds><|vision_start|><|video_pad|>...<|vision_end|>...<|vision_end|>`.
- Tokens never sampled (`_banned`, read by `rollout.streaming.allowed_logits`): pad, bos, the
  vision placeholders (one in a response would break the next forward) and the ids past the
  tokenizer (a real checkpoint's embedding table is padded).
"""

from __future__ import annotations

import torch

from rlvid.data.streaming import needs_text_timestamps, timestamp_label

VISION_TOKENS = ("<|vision_start|>", "<|vision_end|>", "<|video_pad|>", "<|image_pad|>", "<|vision_pad|>")


class QwenVLStreamVocab:
    """Token ids and chunk layout for streaming rollouts of a Qwen-VL model (module docstring)."""

    def __init__(self, processor, vocab_size: int, fps: float, tokens_per_patch, *,
                 silent_token: str = "<|endoftext|>", end_token: str = "<|im_end|>", bos_token: str = "<|im_start|>"):
        """`vocab_size`: the model's logits width. `tokens_per_patch(frames)`: visual tokens of one temporal patch."""
        self.tokenizer = processor.tokenizer
        self.fps = float(fps)
        self.temporal_patch = int(processor.video_processor.temporal_patch_size)
        self.native_timestamps = not needs_text_timestamps(processor)  # Qwen3-VL
        self.tokens_per_patch = tokens_per_patch
        ids = {}
        for name in (silent_token, end_token, bos_token, *VISION_TOKENS):
            found = self.tokenizer.convert_tokens_to_ids(name)
            if not isinstance(found, int) or found == self.tokenizer.unk_token_id or found is None:
                raise ValueError(f"token {name!r} is not a single token of this tokenizer")
            ids[name] = found
        if len({ids[silent_token], ids[end_token], ids[bos_token]}) < 3:
            raise ValueError(f"silent {silent_token!r}, end {end_token!r} and bos {bos_token!r} must be 3 tokens")
        self.silent, self.end, self.bos = ids[silent_token], ids[end_token], ids[bos_token]
        self.frame = ids["<|video_pad|>"]
        self.pad = ids["<|vision_pad|>"]  # padding of trainer batches: never fed, never sampled
        self.vision_start, self.vision_end = ids["<|vision_start|>"], ids["<|vision_end|>"]
        known = len(self.tokenizer)
        self.tokens = self.tokenizer.convert_ids_to_tokens(list(range(known))) + [
            f"<unused:{i}>" for i in range(known, vocab_size)]
        banned = {self.pad, self.bos} | {ids[t] for t in VISION_TOKENS} | set(range(known, vocab_size))
        self._banned = torch.tensor(sorted(banned))

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode([i for i in ids if i not in (self.pad, self.bos, self.end, self.silent)]).strip()

    def chunk_ids(self, chunk) -> list[int]:
        """The tokens of a `rollout.streaming.StreamChunk`: its time as text and its frames as one video."""
        frames = len(chunk.frames)
        if frames % self.temporal_patch:
            raise ValueError(f"chunk at {chunk.start:g}s holds {frames} frames; a chunk must hold whole temporal "
                             f"patches of {self.temporal_patch} frames")
        if abs(frames - (chunk.end - chunk.start) * self.fps) > 1e-6:
            raise ValueError(f"chunk [{chunk.start:g}, {chunk.end:g})s holds {frames} frames, not {self.fps:g} fps "
                             "as the streaming model was built for")
        per_patch = self.tokens_per_patch(chunk.frames)
        patches = frames // self.temporal_patch
        if not self.native_timestamps:
            return (self.encode(timestamp_label(chunk.start)) + [self.vision_start]
                    + [self.frame] * (per_patch * patches) + [self.vision_end])
        out = [self.vision_start]
        for j in range(patches):  # the processor's time of a temporal patch: the mean of its frames' times
            first = chunk.start + j * self.temporal_patch / self.fps
            time = first + (self.temporal_patch - 1) / (2 * self.fps)
            out += self.encode(f"<{time:.1f} seconds>") + [self.vision_start] + [self.frame] * per_patch
            out.append(self.vision_end)
        return out + [self.vision_end]

    def chunk_index(self, ids: list[int]) -> list[int]:
        """For each position of `ids`, the chunk it belongs to (-1 before the first): a chunk opens at its
        video's `<|vision_start|>` (Qwen3-VL: the outer one, the only one not directly before video tokens)."""
        out, chunk = [], -1
        for k, token in enumerate(ids):
            if token == self.vision_start and not (
                    self.native_timestamps and k + 1 < len(ids) and ids[k + 1] == self.frame):
                chunk += 1
            out.append(chunk)
        return out

    def video_runs(self, ids: torch.Tensor) -> list[tuple[int, int]]:
        """[start, end) of every run of video tokens in `ids` [L], in order."""
        is_video = (ids == self.frame).tolist()
        runs, start = [], None
        for k, v in enumerate(is_video + [False]):
            if v and start is None:
                start = k
            elif not v and start is not None:
                runs.append((start, k))
                start = None
        return runs
