"""The one way a video-task sample becomes model inputs.

Rollouts, log-prob passes, SFT and evaluation all go through `VideoInputBuilder`, so they see the
same frames, timestamps and token layout. Videos come from a `VideoCache`, so a prompt's video is
decoded once and shared by its G completions and the training forward.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rlvid.data.prompts import build_messages
from rlvid.data.sample import Sample
from rlvid.data.streaming import chunk_video, needs_text_timestamps, stream_messages
from rlvid.data.video import DecodedVideo, VideoSampling
from rlvid.data.video_cache import VideoCache
from rlvid.timing import subphase


@dataclass
class PromptInputs:
    """Processor outputs for a batch of prompts (left-padded for generation)."""

    inputs: dict[str, torch.Tensor]
    texts: list[str]
    videos: list[DecodedVideo]


class VideoInputBuilder:
    """Turns samples (and optionally completions) into processor outputs for one model."""

    def __init__(self, processor, sampling: VideoSampling | None = None, cache: VideoCache | None = None,
                 template: str = "default", reasoning: bool = True, system: str | None = None,
                 streaming: bool = False, stream_chunk_seconds: float = 1.0):
        self.processor = processor
        self.sampling = sampling or sampling_for_processor(processor)
        self.cache = cache if cache is not None else VideoCache()
        self.template = template
        self.reasoning = reasoning
        self.system = system
        self.streaming = streaming
        self.stream_chunk_seconds = stream_chunk_seconds

    @property
    def streams(self) -> bool:
        """True when videos are fed as timestamped chunks (rlvid.data.streaming; native on Qwen3-VL)."""
        return self.streaming and needs_text_timestamps(self.processor)

    def prompt_text(self, sample: Sample) -> str:
        messages = build_messages(sample, self.template, self.reasoning, self.system)
        if self.streams:
            messages = stream_messages(messages, self.video_chunks(self.video(sample)))
        return self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def video_chunks(self, video: DecodedVideo) -> list[DecodedVideo]:
        """The video cut into `stream_chunk_seconds` chunks (timestamped streaming input)."""
        return chunk_video(video, self.stream_chunk_seconds, self.sampling.frame_factor)

    def video(self, sample: Sample) -> DecodedVideo:
        return self.cache.get(sample.video, self.sampling)

    def prompts(self, samples: list[Sample]) -> PromptInputs:
        """Left-padded prompt batch, ready for `generate`."""
        texts = [self.prompt_text(s) for s in samples]
        videos = [self.video(s) for s in samples]
        inputs = self.process_prompts(texts, videos, padding_side="left")
        return PromptInputs(inputs, texts, videos)

    def prompt_with_completions(self, samples: list[Sample], completions: list[str],
                                eos: bool = True) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Right-padded prompt+completion batch and the mask of completion tokens (for log-probs/SFT).

        Completion tokens are tokenised on their own and appended, so the ids the loss sees are
        exactly the ids the prompt tokenisation would produce, whatever the BPE merges.
        """
        tok = self.processor.tokenizer
        texts = [self.prompt_text(s) for s in samples]
        videos = [self.video(s) for s in samples]
        prompt_inputs = self.process_prompts(texts, videos, padding_side="right")
        eos_ids = [tok.eos_token_id] if eos else []
        completion_ids = [tok(c, add_special_tokens=False)["input_ids"] + eos_ids for c in completions]
        return append_completions(prompt_inputs, completion_ids, tok.pad_token_id)

    def process_prompts(self, texts: list[str], videos: list[DecodedVideo],
                        padding_side: str) -> dict[str, torch.Tensor]:
        """The processor call every path shares: pre-sampled frames + metadata, no re-sampling or resizing."""
        with subphase("processor"):
            return self._call_processor(texts, videos, padding_side)

    def _call_processor(self, texts: list[str], videos: list[DecodedVideo], padding_side: str
                        ) -> dict[str, torch.Tensor]:
        if self.streams:
            videos = [chunk for v in videos for chunk in self.video_chunks(v)]
        self.processor.tokenizer.padding_side = padding_side
        out = self.processor(
            text=texts,
            videos=[v.frames for v in videos],
            video_metadata=[v.metadata() for v in videos],
            do_sample_frames=False,
            do_resize=False,
            cap_pixels_per_frame=False,
            padding=True,
            return_tensors="pt",
        )
        return dict(out)


def append_completions(prompt_inputs: dict[str, torch.Tensor], completion_ids: list[list[int]],
                       pad_id: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Append per-row completion ids after each right-padded prompt; returns inputs and completion mask."""
    ids, attn = prompt_inputs["input_ids"], prompt_inputs["attention_mask"]
    prompt_lens = attn.sum(1).tolist()
    total = max(p + len(c) for p, c in zip(prompt_lens, completion_ids, strict=True))
    rows = len(completion_ids)
    new_ids = torch.full((rows, total), pad_id, dtype=ids.dtype)
    new_attn = torch.zeros((rows, total), dtype=attn.dtype)
    mask = torch.zeros((rows, total), dtype=torch.bool)
    extra = {k: v for k, v in prompt_inputs.items() if k not in ("input_ids", "attention_mask")}
    type_ids = extra.get("mm_token_type_ids")
    new_type_ids = torch.zeros((rows, total), dtype=type_ids.dtype) if type_ids is not None else None
    for r, (plen, comp) in enumerate(zip(prompt_lens, completion_ids, strict=True)):
        new_ids[r, :plen] = ids[r, :plen]
        new_ids[r, plen:plen + len(comp)] = torch.tensor(comp, dtype=ids.dtype)
        new_attn[r, :plen + len(comp)] = 1
        mask[r, plen:plen + len(comp)] = True
        if new_type_ids is not None:
            new_type_ids[r, :plen] = type_ids[r, :plen]
    out = dict(extra, input_ids=new_ids, attention_mask=new_attn)
    if new_type_ids is not None:
        out["mm_token_type_ids"] = new_type_ids
    return out, mask


def sampling_for_processor(processor, **overrides) -> VideoSampling:
    """Frame-size factors taken from the processor's vision settings (28 for Qwen2.5-VL, 32 for Qwen3-VL)."""
    vp = processor.video_processor
    factor = int(vp.patch_size) * int(vp.merge_size)
    defaults = dict(image_factor=factor, frame_factor=int(vp.temporal_patch_size))
    defaults.update(overrides)
    return VideoSampling(**defaults)
