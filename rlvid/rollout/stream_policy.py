"""`StreamPolicy`: a streaming model as the shared training loop holds a policy.

`trainers/loop.py:Trainer` keeps the trainable model in `policy.model`, hands the wrapper that
`accelerator.prepare` returned to `policy.wrap`, and passes the policy to the evaluation hooks.
A streaming model (`rlvid.models.stream_lm.TinyStreamLM`, or anything with `vocab`, `embed` and a
cached forward) has no processor or input builder, so those are None; what a hook needs from it
is `transcripts`: greedy streaming rollouts (rlvid/rollout/streaming.py), one transcript per clip.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from rlvid.rollout.streaming import StreamSampling, stream_chunks, stream_rollouts


class StreamPolicy:
    """The streaming model the loop trains; `chunk_seconds` and `max_response_tokens` shape its rollouts."""

    processor = None  # no processor, tokenizer or input builder: the model reads frames and a closed vocabulary
    tokenizer = None
    builder = None

    def __init__(self, model: torch.nn.Module, chunk_seconds: float, max_response_tokens: int):
        self.model = model
        self.module: torch.nn.Module = model
        self.chunk_seconds = chunk_seconds
        self.max_response_tokens = max_response_tokens

    def wrap(self, module: torch.nn.Module) -> None:
        """Keep the prepared wrapper (one process: the model itself)."""
        self.module = module

    def pop_stats(self) -> dict[str, float]:
        return {}

    @torch.no_grad()
    def transcripts(self, clips: Sequence) -> list[str]:
        """Greedy streaming rollouts of `clips` (`StreamClip`: a `Sample` with `stream_events` and its frames)."""
        was_training = self.model.training
        self.model.eval()
        sampling = StreamSampling(0.0, self.max_response_tokens)
        out = []
        for clip in clips:
            chunks = stream_chunks(torch.as_tensor(clip.frames), clip.fps, self.chunk_seconds)
            out.append(stream_rollouts(self.model, clip.sample.question, chunks, 1, sampling)[0].transcript)
        self.model.train(was_training)
        return out
