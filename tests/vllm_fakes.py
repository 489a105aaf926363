"""CPU stand-ins for vLLM's `LLM` / `SamplingParams` and TRL's `VLLMClient`, for tests without a GPU.

They record every call and answer like the real objects in the ways the engines depend on:
`FakeLLM.generate` returns RequestOutput-like objects (n completions, sampled-token log-prob maps,
finish reasons, prompt token ids) and, given the processor, computes the prompt tokens the way
vLLM's Qwen processors do (the HF processor on the request's frames, metadata and
`mm_processor_kwargs`); `collective_rpc` runs a callable against an in-process worker whose model
records `load_weights`. `FakeVLLMClient.chat` renders the messages with the chat template and
decodes the frame-sequence URL, as the server would. Nothing here imports vLLM.
"""

from __future__ import annotations

import base64
import io
import types
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from rlvid.rollout.weight_names import vllm_name

DEFAULT_SAMPLING = dict(n=1, temperature=1.0, top_p=1.0, top_k=0, max_tokens=16, repetition_penalty=1.0,
                        logprobs=None, seed=None, logit_bias=None, skip_special_tokens=True)


class FakeSamplingParams:
    """`vllm.SamplingParams` stand-in: keeps its keyword arguments as attributes; unknown ones are errors."""

    def __init__(self, **kwargs):
        unknown = set(kwargs) - set(DEFAULT_SAMPLING)
        if unknown:
            raise TypeError(f"unexpected SamplingParams arguments {sorted(unknown)}")
        self.__dict__.update({**DEFAULT_SAMPLING, **kwargs})


@dataclass
class FakeLogprob:
    logprob: float
    rank: int = 1


@dataclass
class FakeCompletion:
    index: int
    text: str
    token_ids: list[int]
    cumulative_logprob: float | None
    logprobs: list[dict[int, FakeLogprob]] | None
    finish_reason: str | None
    stop_reason: int | str | None = None


@dataclass
class FakeRequestOutput:
    request_id: str
    prompt: str
    prompt_token_ids: list[int]
    outputs: list[FakeCompletion]
    finished: bool = True


def fake_completion_ids(seed: int, length: int, low: int = 20, high: int = 200) -> list[int]:
    return torch.randint(low, high, (length,), generator=torch.Generator().manual_seed(seed)).tolist()


def hf_process(processor, text: str, videos: list[tuple[np.ndarray, dict]], mm_kwargs: dict) -> dict:
    """What vLLM's Qwen processors compute for a prompt: the HF processor on pre-sampled frames + their metadata."""
    from transformers.video_utils import VideoMetadata

    metas = [VideoMetadata(**{k: v for k, v in meta.items() if k != "do_sample_frames"}) for _, meta in videos]
    return processor(text=[text], videos=[frames for frames, _ in videos], video_metadata=metas, return_tensors="pt",
                     **mm_kwargs)


def hf_prompt_ids(processor, text: str, videos: list[tuple[np.ndarray, dict]], mm_kwargs: dict) -> list[int]:
    return hf_process(processor, text, videos, mm_kwargs)["input_ids"][0].tolist()


class FakeVllmModel:
    """The model inside a fake worker: `load_weights` stores tensors under vLLM names and returns those names."""

    def __init__(self, architecture: str | None, param_names: set[str] | None):
        self.architecture = architecture
        self.param_names = param_names
        self.weights: dict[str, torch.Tensor] = {}
        self.load_calls = 0

    def _name(self, name: str) -> str:
        try:
            return vllm_name(name, self.architecture)
        except KeyError:
            return name

    def load_weights(self, weights) -> set[str]:
        self.load_calls += 1
        names = set()
        for name, tensor in weights:
            mapped = self._name(name)
            self.weights[mapped] = tensor.detach().clone()
            names.add(mapped)
        return names

    def named_parameters(self):
        names = self.param_names if self.param_names is not None else set(self.weights)
        return [(name, None) for name in sorted(names)]


# vLLM's layerwise reload steps (rlvid.rollout.vllm_reload) need vLLM itself: the fake worker's model loads
# tensors directly, so beginning and finishing a reload do nothing and there are no fused layers.
RELOAD_STAND_INS = {
    "begin_reload_on_worker": lambda worker: [],
    "load_weights_on_worker": lambda worker, weights: sorted(worker.get_model().load_weights(weights)),
    "finish_reload_on_worker": lambda worker, *args: [],
    "packed_modules_on_worker": lambda worker: {},
}


class FakeWorker:
    def __init__(self, model: FakeVllmModel):
        self._model = model

    def get_model(self) -> FakeVllmModel:
        return self._model


class FakeLLM:
    """`vllm.LLM` stand-in. `calls` logs method names in order; `generate_calls` keeps the prompts and params."""

    def __init__(self, model: str = "", *, processor=None, architecture: str | None = None,
                 param_names: set[str] | None = None, eos_token_id: int = 2, completion_length: int = 5,
                 prompt_id_offset: int = 0, **kwargs):
        self.model_path = model
        self.kwargs = kwargs
        self.processor = processor
        self.eos_token_id = eos_token_id
        self.completion_length = completion_length
        self.prompt_id_offset = prompt_id_offset
        self.calls: list[str] = []
        self.generate_calls: list[tuple[list[dict], list[FakeSamplingParams]]] = []
        self.last_outputs: list[FakeRequestOutput] = []
        self.vllm_model = FakeVllmModel(architecture, param_names)
        self.worker = FakeWorker(self.vllm_model)
        self.llm_engine = types.SimpleNamespace(reset_encoder_cache=lambda: self.calls.append("reset_encoder_cache"))

    def generate(self, prompts, sampling_params, use_tqdm=True):
        self.calls.append("generate")
        params = sampling_params if isinstance(sampling_params, list) else [sampling_params] * len(prompts)
        self.generate_calls.append((list(prompts), list(params)))
        self.last_outputs = [self._answer(i, p, sp) for i, (p, sp) in enumerate(zip(prompts, params, strict=True))]
        return self.last_outputs

    def _answer(self, i: int, prompt: dict, sp: FakeSamplingParams) -> FakeRequestOutput:
        prompt_ids = []
        if self.processor is not None:
            prompt_ids = hf_prompt_ids(self.processor, prompt["prompt"], prompt["multi_modal_data"]["video"],
                                       prompt["mm_processor_kwargs"])
            prompt_ids = [t + self.prompt_id_offset for t in prompt_ids]
        completions = []
        for k in range(sp.n):
            seed = (sp.seed or 0) + k + 1000 * i
            length = min(self.completion_length + k % 2, sp.max_tokens)
            ids = fake_completion_ids(seed, length)
            finish = "length" if length == sp.max_tokens else "stop"
            if finish == "stop":
                ids = ids[:-1] + [self.eos_token_id]
            lps = None if sp.logprobs is None else [{t: FakeLogprob(-0.1 * (j + 1))} for j, t in enumerate(ids)]
            completions.append(FakeCompletion(k, "", ids, None, lps, finish))
        completions.reverse()  # vLLM does not promise index order
        return FakeRequestOutput(str(i), prompt["prompt"], prompt_ids, completions)

    def collective_rpc(self, method, timeout=None, args=(), kwargs=None):
        self.calls.append("collective_rpc")
        stand_in = RELOAD_STAND_INS.get(getattr(method, "__name__", ""))
        return [(stand_in or method)(self.worker, *args, **(kwargs or {}))]

    def reset_prefix_cache(self, *args, **kwargs):
        self.calls.append("reset_prefix_cache")
        return True

    def reset_mm_cache(self):
        self.calls.append("reset_mm_cache")

    def sleep(self, level: int = 1, mode: str = "abort"):
        self.calls.append(f"sleep:{level}")

    def wake_up(self, tags=None):
        self.calls.append("wake_up:" + ",".join(tags or ["all"]))


def fake_vllm_module(**llm_defaults) -> types.ModuleType:
    """A module to put in `sys.modules["vllm"]`: `LLM` (a FakeLLM, keeping every instance) and `SamplingParams`."""
    module = types.ModuleType("vllm")
    module.instances = []

    def make_llm(**kwargs):
        llm = FakeLLM(**{**llm_defaults, **kwargs})
        module.instances.append(llm)
        return llm

    module.LLM = make_llm
    module.SamplingParams = FakeSamplingParams
    return module


# ---------------------------------------------------------------- server


def decode_frames_url(url: str) -> np.ndarray:
    """The frames of a `data:video/jpeg;base64,<img>,<img>,...` URL, as vLLM decodes them (PIL), THWC uint8."""
    from PIL import Image

    head, _, body = url.partition(",")
    assert head == "data:video/jpeg;base64", head
    return np.stack([np.asarray(Image.open(io.BytesIO(base64.b64decode(p))).convert("RGB")) for p in body.split(",")])


@dataclass
class FakeResponse:
    status_code: int = 200
    text: str = ""


@dataclass
class FakeSession:
    posts: list[str] = field(default_factory=list)

    def post(self, url: str, **kwargs) -> FakeResponse:
        self.posts.append(url)
        return FakeResponse()


class FakeVLLMClient:
    """TRL `VLLMClient` stand-in for the calls the server engine makes; `calls` logs them in order."""

    processor = None  # set by tests: renders prompts the way the server would
    eos_token_id = 2
    completion_length = 5

    def __init__(self, base_url=None, host="127.0.0.1", server_port=8000, group_port=51216, connection_timeout=0.0):
        self.base_url = base_url or f"http://{host}:{server_port}"
        self.session = FakeSession()
        self.calls: list[str] = []
        self.chat_calls: list[dict[str, Any]] = []
        self.received: dict[str, torch.Tensor] = {}
        self.metadata: list[tuple[str, str, list[int]]] = []
        self.communicator_device = None
        self._updating = False

    def init_communicator(self, device=0):
        self.calls.append("init_communicator")
        self.communicator_device = device

    def chat(self, messages, n=1, repetition_penalty=1.0, temperature=1.0, top_p=1.0, top_k=0, min_p=0.0,
             max_tokens=16, logprobs=0, generation_kwargs=None, **kwargs):
        self.calls.append("chat")
        call = dict(messages=messages, n=n, temperature=temperature, top_p=top_p, top_k=top_k, max_tokens=max_tokens,
                    repetition_penalty=repetition_penalty, logprobs=logprobs, generation_kwargs=generation_kwargs)
        self.chat_calls.append(call)
        (conversation,) = messages
        prompt_ids = self._prompt_ids(conversation, generation_kwargs or {})
        seed = (generation_kwargs or {}).get("seed") or 0
        completions, lps, lp_ids = [], [], []
        for k in range(n):
            length = min(self.completion_length + k % 2, max_tokens)
            ids = fake_completion_ids(seed + k, length)
            if length < max_tokens:
                ids = ids[:-1] + [self.eos_token_id]
            completions.append(ids)
            lps.append([[-0.2 * (j + 1)] for j in range(len(ids))])
            lp_ids.append([[t] for t in ids])
        return {"prompt_ids": [prompt_ids], "completion_ids": completions, "logprobs": lps, "logprob_token_ids": lp_ids}

    def _prompt_ids(self, conversation, generation_kwargs) -> list[int]:
        if self.processor is None:
            return []
        video = None
        rendered = []
        for message in conversation:
            content = message["content"]
            if isinstance(content, list):
                parts = []
                for part in content:
                    if part["type"] == "video_url":
                        video = decode_frames_url(part["video_url"]["url"])
                        parts.append({"type": "video"})
                    else:
                        parts.append(part)
                content = parts
            rendered.append({**message, "content": content})
        text = self.processor.apply_chat_template(rendered, tokenize=False, add_generation_prompt=True)
        io_kwargs = dict(generation_kwargs["media_io_kwargs"]["video"])
        assert io_kwargs.pop("num_frames") == len(video)
        return hf_prompt_ids(self.processor, text, [(video, io_kwargs)], generation_kwargs["mm_processor_kwargs"])

    @contextmanager
    def weight_update(self):
        self.calls.append("start_weight_update")
        self._updating = True
        try:
            yield
        finally:
            self._updating = False
            self.calls.append("finish_weight_update")

    def update_named_params(self, metadata, named_params):
        self.calls.append("update_named_params" + ("" if self._updating else ":standalone"))
        self.metadata.extend(metadata)
        for (name, dtype, shape), (name2, tensor) in zip(metadata, named_params, strict=True):
            assert name == name2 and dtype == str(tensor.dtype).removeprefix("torch.") and shape == list(tensor.shape)
            self.received[name] = tensor.detach().clone()

    def reset_prefix_cache(self):
        self.calls.append("reset_prefix_cache")
