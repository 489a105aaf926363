"""What rlvid sends to vLLM: prompts with the frames rlvid already decoded, and sampling settings.

Rollout and training must see the same frames and the same processing. rlvid samples and resizes
frames itself (`rlvid.data.video`) and hands the processor pre-sampled frames plus their
`VideoMetadata` with `do_sample_frames=False, do_resize=False` (`VideoInputBuilder.process_prompts`).
The requests built here carry exactly that to vLLM:

- colocated (`LLM.generate`): `multi_modal_data={"video": [(frames THWC uint8, metadata)]}`, the
  metadata being the `VideoMetadata` fields (fps, duration, total_num_frames, frames_indices, ...)
  plus `do_sample_frames: False`, which vLLM's Qwen2.5-VL / Qwen3-VL processors require for
  pre-sampled videos; the processor switches go in `mm_processor_kwargs`.
- server (`/v1/chat/completions`): the frames travel as a `data:video/jpeg;base64,` URL whose
  frames are PNG-encoded (vLLM opens each frame with PIL, which reads PNG whatever the label says,
  so the pixels arrive unchanged), and the metadata as the request's `media_io_kwargs`.
"""

from __future__ import annotations

import base64
import dataclasses
import io
from typing import Any

import numpy as np

from rlvid.data.model_inputs import VideoInputBuilder
from rlvid.data.prompts import build_messages
from rlvid.data.sample import Sample
from rlvid.data.streaming import stream_messages
from rlvid.data.video import DecodedVideo
from rlvid.rollout.base import SamplingParams

LOGIT_SUPPRESS = -100.0  # vLLM clamps logit_bias to [-100, 100]; -100 makes a token unreachable in practice


def processor_kwargs(processor) -> dict[str, Any]:
    """The processor switches the training path uses (see `VideoInputBuilder.process_prompts`), for vLLM's processor."""
    kwargs: dict[str, Any] = {"do_sample_frames": False, "do_resize": False}
    if hasattr(processor.video_processor, "cap_pixels_per_frame"):  # Qwen3-VL's video processor knows it
        kwargs["cap_pixels_per_frame"] = False
    return kwargs


def frames_thwc(video: DecodedVideo) -> np.ndarray:
    """The decoded frames as vLLM's video loaders produce them: uint8 numpy [T, H, W, 3], contiguous."""
    return np.ascontiguousarray(video.frames.permute(0, 2, 3, 1).numpy())


def video_metadata(video: DecodedVideo) -> dict[str, Any]:
    """The `VideoMetadata` fields the training processor sees, plus `do_sample_frames: False` (no re-sampling)."""
    fields = dataclasses.asdict(video.metadata())
    meta = {k: v for k, v in fields.items() if v is not None}
    meta["frames_indices"] = [int(i) for i in meta["frames_indices"]]
    meta["do_sample_frames"] = False
    return meta


def request_videos(builder: VideoInputBuilder, sample: Sample) -> list[DecodedVideo]:
    """The videos of a prompt, in prompt order: the sampled video, or its chunks when the builder streams."""
    video = builder.video(sample)
    return builder.video_chunks(video) if getattr(builder, "streams", False) else [video]


def prompt_request(builder: VideoInputBuilder, sample: Sample) -> dict[str, Any]:
    """One `LLM.generate` prompt: the chat-templated text, the video(s) and the processor switches."""
    return {
        "prompt": builder.prompt_text(sample),
        "multi_modal_data": {"video": [(frames_thwc(v), video_metadata(v)) for v in request_videos(builder, sample)]},
        "mm_processor_kwargs": processor_kwargs(builder.processor),
    }


def sampling_kwargs(sampling: SamplingParams, n: int, *, seed: int | None = None,
                    suppress_token_ids: list[int] | tuple[int, ...] = ()) -> dict[str, Any]:
    """Keyword arguments of `vllm.SamplingParams` for G = `n` completions of one prompt.

    `logprobs=0` asks for the sampled token's log-prob only (no top-k alternatives). `top_k=0` is
    vLLM's "off" (as in rlvid). Vision placeholder tokens get the lowest logit bias, as the hf engine
    suppresses them: one inside a completion would break the training forward.
    """
    kwargs: dict[str, Any] = dict(
        n=n,
        temperature=sampling.temperature,
        top_p=sampling.top_p,
        top_k=max(int(sampling.top_k), 0),
        max_tokens=sampling.max_new_tokens,
        repetition_penalty=sampling.repetition_penalty,
        logprobs=0,
        seed=seed,
        skip_special_tokens=True,
    )
    if suppress_token_ids:
        kwargs["logit_bias"] = {int(t): LOGIT_SUPPRESS for t in suppress_token_ids}
    return kwargs


def request_seed(base_seed: int | None, call: int, prompt: int, num_generations: int) -> int | None:
    """A distinct, reproducible seed per prompt of each generate call (vLLM adds the completion index)."""
    if base_seed is None:
        return None
    return (base_seed * 1_000_003 + call * 100_003 + prompt * num_generations) % (2**31 - 1)


# ---------------------------------------------------------------- server requests


def frames_data_url(video: DecodedVideo, compress_level: int = 1) -> str:
    """`data:video/jpeg;base64,<png>,<png>,...`: vLLM's frame-sequence video URL, with lossless PNG frames."""
    from PIL import Image

    parts = []
    for frame in frames_thwc(video):
        buf = io.BytesIO()
        Image.fromarray(frame).save(buf, format="PNG", compress_level=compress_level)
        parts.append(base64.b64encode(buf.getvalue()).decode("ascii"))
    return "data:video/jpeg;base64," + ",".join(parts)


def media_io_kwargs(video: DecodedVideo) -> dict[str, dict[str, Any]]:
    """Per-request video loading settings: every frame sent is kept, with its source indices and timing.

    They apply to every video of the request, so a server request carries one video (streamed
    chunks, which need one metadata each, are colocated-engine only).
    """
    meta = video_metadata(video)
    return {"video": {
        "num_frames": len(meta["frames_indices"]),  # vLLM keeps only the first 32 frames unless told
        "fps": float(meta["fps"]),
        "frames_indices": meta["frames_indices"],
        "total_num_frames": int(meta["total_num_frames"]),
        "duration": float(meta["duration"]),
        "do_sample_frames": False,
    }}


def chat_messages(builder: VideoInputBuilder, sample: Sample, video_urls: list[str]) -> list[dict[str, Any]]:
    """The sample's chat (the messages `builder.prompt_text` renders) with its videos as `video_url` parts, in order."""
    messages = build_messages(sample, builder.template, builder.reasoning, builder.system)
    if getattr(builder, "streams", False):
        messages = stream_messages(messages, request_videos(builder, sample))
    urls = iter(video_urls)
    out = []
    for message in messages:
        content = message["content"]
        if isinstance(content, list):
            content = [{"type": "video_url", "video_url": {"url": next(urls)}} if part.get("type") == "video" else part
                       for part in content]
        out.append({**message, "content": content})
    if next(urls, None) is not None:
        raise ValueError(f"{sample.id}: more videos than video parts in the prompt")
    return out


def server_request(builder: VideoInputBuilder, sample: Sample) -> dict[str, Any]:
    """One chat request's sample-specific parts: messages and the request-level video/processor settings."""
    if getattr(builder, "streams", False):
        raise NotImplementedError("rollout.engine=vllm-server does not feed streamed video chunks "
                                  "(data.video.streaming); use rollout.engine=vllm or turn streaming off")
    video = builder.video(sample)
    return {
        "messages": chat_messages(builder, sample, [frames_data_url(video)]),
        "media_io_kwargs": media_io_kwargs(video),
        "mm_processor_kwargs": processor_kwargs(builder.processor),
    }
