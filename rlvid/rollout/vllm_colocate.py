"""The `vllm` engine: a vLLM `LLM` inside each training process, sharing its GPU with the trainer.

- One `LLM` per process, started with vLLM's external launcher (the training processes are the
  vLLM workers; no extra processes), `gpu_memory_utilization` from the recipe, and
  `tensor_parallel_size` ranks per model copy: the prompts of a tensor-parallel group are gathered
  so its ranks issue identical requests, and each takes its own completions back.
- Sleep mode (`rollout.vllm.enable_sleep_mode`): after each rollout vLLM sleeps at level 2, which
  frees its weights and KV cache for the update; weights are woken and re-pushed from the policy
  at the next sync (level 2 discards them), the KV cache is woken just before generating.
- Weight sync (`sync_weights`): the policy's weights in buckets (`weight_sync`), names checked
  (`weight_names`), loaded through vLLM's layerwise reload on the in-process worker
  (`vllm_reload`: each layer finalised once all its tensors arrived, tied LM head re-packed);
  then the prefix, multi-modal and encoder caches are reset so no vision embedding computed with
  old weights is reused. The first push is full and checks that every vLLM parameter was written;
  later pushes send only whole vLLM layers holding weights that can have changed (trainable ones,
  merged LoRA layers).
- Requests carry rlvid's decoded frames (`vllm_requests`); the first prompt's tokens are compared
  with the training processor's (`check_prompt_ids`).
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import torch

from rlvid.data.model_inputs import VideoInputBuilder
from rlvid.data.sample import Sample
from rlvid.policy.placeholders import placeholder_token_ids
from rlvid.rollout.base import Rollouts, SamplingParams
from rlvid.rollout.vllm_cpu import cpu_environment, cpu_llm_overrides, explain_split_prefill, vllm_on_cpu
from rlvid.rollout.vllm_import import require_vllm
from rlvid.rollout.vllm_outputs import check_prompt_ids, parse_request_outputs
from rlvid.rollout.vllm_reload import (
    begin_reload_on_worker,
    finish_reload_on_worker,
    load_weights_on_worker,
    packed_modules_on_worker,
    parameter_names_on_worker,
)
from rlvid.rollout.vllm_requests import prompt_request, request_seed, sampling_kwargs
from rlvid.rollout.weight_names import WeightNameError, check_vllm_names, missing_vllm_params, model_architecture
from rlvid.rollout.weight_sync import DEFAULT_BUCKET_BYTES, PushStats, buckets, iter_push_weights

logger = logging.getLogger("rlvid.rollout")


def gpu_memory() -> dict[str, float]:
    """Free and used memory of the current GPU in GiB (empty without CUDA)."""
    if not torch.cuda.is_available():
        return {}
    free, total = torch.cuda.mem_get_info()
    return {"free_gib": free / 1024**3, "used_gib": (total - free) / 1024**3}


class VLLMColocateEngine:
    """RolloutEngine over an in-process vLLM `LLM` (see the module docstring)."""

    def __init__(self, llm, builder: VideoInputBuilder, model, sampling_params_cls, *, tp_size: int = 1,
                 tp_group=None, tp_rank: int = 0, enable_sleep_mode: bool = False, seed: int | None = None,
                 bucket_bytes: int = DEFAULT_BUCKET_BYTES, push_dtype: torch.dtype | None = None,
                 check_prompts: bool = True):
        self.llm = llm
        self.builder = builder
        self.model = model
        self.sampling_params_cls = sampling_params_cls
        self.tp_size, self.tp_group, self.tp_rank = tp_size, tp_group, tp_rank
        self.enable_sleep_mode = enable_sleep_mode
        self.seed = seed
        self.bucket_bytes = bucket_bytes
        self.push_dtype = push_dtype
        self.check_prompts = check_prompts
        self.architecture = model_architecture(model)
        self.placeholder_ids = placeholder_token_ids(model)
        self.memory_log: list[dict[str, Any]] = []
        self.last_push = PushStats()
        self._calls = 0
        self._synced = False  # vLLM holds the policy's current weights (it started from the checkpoint on disk)
        self._coverage_checked = False
        self._packed: dict[str, list[str]] | None = None  # vLLM's fused layers, read on the first push
        self._prompts_checked = False
        self._weights_asleep = self._kv_asleep = False
        if enable_sleep_mode:
            self.sleep()

    # ------------------------------------------------------------------ RolloutEngine

    def generate(self, batch: list[Sample], num_generations: int, sampling: SamplingParams) -> Rollouts:
        requests = [prompt_request(self.builder, s) for s in batch]
        requests, offset = self._gather_tensor_parallel(requests)
        if not self._synced:  # first call, or weights discarded by sleep: vLLM must hold the policy's weights
            self.push(self.model, full=True)
        self.wake(kv_cache=True)
        params = [self.sampling_params_cls(**sampling_kwargs(
            sampling, num_generations, seed=request_seed(self.seed, self._calls, i, num_generations),
            suppress_token_ids=self.placeholder_ids)) for i in range(len(requests))]
        self._calls += 1
        try:
            outputs = self.llm.generate(requests, params, use_tqdm=False) if requests else []
        except RuntimeError as err:
            raise explain_split_prefill(err) from err
        mine = outputs[offset:offset + len(batch)]
        if self.check_prompts and not self._prompts_checked and mine:
            expected = self.builder.prompts(batch[:1]).inputs["input_ids"][0].tolist()
            check_prompt_ids(expected, mine[0].prompt_token_ids, self.builder.processor.tokenizer, f"{batch[0].id}")
            self._prompts_checked = True
        rollouts = parse_request_outputs(mine, num_generations, self.builder.processor.tokenizer)
        if self.enable_sleep_mode:
            self.sleep()
        return rollouts

    def sync_weights(self, model) -> None:
        """Push the updated policy into vLLM (full after a sleep discarded the weights, else what changed)."""
        self.model = model
        self.push(model, full=not self._synced)

    # ------------------------------------------------------------------ weights

    def push(self, model, full: bool) -> PushStats:
        """Load the policy's weights into vLLM through its layerwise reload (`vllm_reload`), check names, reset caches.

        Buckets bound what travels per call; vLLM finalises each layer once all its tensors arrived,
        whichever bucket they came in. A partial push sends whole vLLM layers (`layer_unit`).
        """
        start = time.perf_counter()
        self.wake(weights=True)
        stats = PushStats()
        loaded: set[str] = set()
        if self._packed is None:
            self._packed = self.llm.collective_rpc(packed_modules_on_worker)[0]
        weights = iter_push_weights(model, trainable_only=not full, dtype=self.push_dtype, packed=self._packed)
        self.llm.collective_rpc(begin_reload_on_worker)
        try:
            for bucket in buckets(weights, self.bucket_bytes):
                check_vllm_names([name for name, _ in bucket], self.architecture)
                per_worker = self.llm.collective_rpc(load_weights_on_worker, args=(bucket,))
                loaded.update(per_worker[0] if per_worker else [])
                stats.buckets += 1
                stats.tensors += len(bucket)
                stats.bytes += sum(t.numel() * t.element_size() for _, t in bucket)
        finally:  # vLLM's layers must leave the reload state even when a bucket failed
            partial = self.llm.collective_rpc(finish_reload_on_worker)[0]
        if partial:
            raise WeightNameError(f"the push left {len(partial)} vLLM layer(s) partly written, so they hold "
                                  f"uninitialised values: {partial[:10]}")
        if full and not self._coverage_checked:
            vllm_params = self.llm.collective_rpc(parameter_names_on_worker)[0]
            missing = missing_vllm_params(loaded, vllm_params)
            if missing:
                raise WeightNameError(f"a full push left {len(missing)} vLLM parameter(s) unwritten, which would keep "
                                      f"stale weights: {missing[:20]}")
            self._coverage_checked = True
        self.reset_caches()
        self._synced = True
        stats.seconds = time.perf_counter() - start
        self.last_push = stats
        logger.info("pushed %d tensors (%.1f MiB, %d buckets) to vLLM in %.2f s", stats.tensors,
                    stats.bytes / 1024**2, stats.buckets, stats.seconds)
        return stats

    def reset_caches(self) -> None:
        """Forget prefix KV blocks, processed multi-modal inputs and vision-encoder outputs of the old weights."""
        self.llm.reset_prefix_cache()
        self.llm.reset_mm_cache()
        engine = getattr(self.llm, "llm_engine", None)
        if hasattr(engine, "reset_encoder_cache"):
            engine.reset_encoder_cache()

    # ------------------------------------------------------------------ sleep mode

    def sleep(self) -> None:
        """Level 2: free vLLM's weights and KV cache (the weights must be pushed again before generating)."""
        before = gpu_memory()
        self.llm.sleep(level=2)
        self._weights_asleep = self._kv_asleep = True
        self._synced = False
        self.memory_log.append({"event": "sleep", "before": before, "after": gpu_memory()})

    def wake(self, weights: bool = False, kv_cache: bool = False) -> None:
        """Re-allocate what the next step needs: weights before a push, the KV cache before generating."""
        tags = [t for t, want, asleep in (("weights", weights, self._weights_asleep),
                                          ("kv_cache", kv_cache, self._kv_asleep)) if want and asleep]
        if not tags:
            return
        if torch.cuda.is_available():
            torch.cuda.empty_cache()  # hand the trainer's cached blocks back before vLLM allocates
        before = gpu_memory()
        self.llm.wake_up(tags=tags)
        self._weights_asleep &= "weights" not in tags
        self._kv_asleep &= "kv_cache" not in tags
        self.memory_log.append({"event": "wake:" + ",".join(tags), "before": before, "after": gpu_memory()})

    # ------------------------------------------------------------------ tensor parallel

    def _gather_tensor_parallel(self, requests: list[dict]) -> tuple[list[dict], int]:
        """All requests of this tensor-parallel group (identical on its ranks) and where this rank's start."""
        if self.tp_size == 1:
            return requests, 0
        gathered: list[Any] = [None] * self.tp_size
        torch.distributed.all_gather_object(gathered, requests, group=self.tp_group)
        offset = sum(len(g) for g in gathered[:self.tp_rank])
        return [r for g in gathered for r in g], offset


# ---------------------------------------------------------------- construction


def distributed_layout() -> tuple[int, int, int]:
    """(rank, local rank, world size) of this training process (1 process when not distributed)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
        return rank, int(os.environ.get("LOCAL_RANK", rank)), world
    return int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def model_path(model, recipe) -> str:
    """The folder (or hub id) the policy was loaded from: vLLM starts from the same checkpoint."""
    return getattr(model, "name_or_path", None) or recipe.model.path


def model_dtype(model) -> torch.dtype:
    return next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.bfloat16)


def max_videos_per_prompt(recipe) -> int:
    """1, or with `data.video.streaming` the most chunks a video can make (chunks hold >= 2 frames)."""
    video = recipe.data.video
    return max(1, video.max_frames // 2) if getattr(video, "streaming", False) else 1


def llm_kwargs(recipe, path: str, dtype: torch.dtype, seed: int) -> dict[str, Any]:
    """Arguments of `vllm.LLM` for the colocated engine: the policy's folder and dtype, the recipe's settings."""
    cfg = recipe.rollout.vllm
    return dict(
        model=path,
        tensor_parallel_size=cfg.tensor_parallel_size,
        gpu_memory_utilization=cfg.gpu_memory_utilization,
        enable_sleep_mode=cfg.enable_sleep_mode,
        distributed_executor_backend="external_launcher",  # the training processes are vLLM's workers
        seed=seed,  # the same within a tensor-parallel group, so its ranks sample identically
        dtype="float32" if dtype == torch.float32 else str(dtype).removeprefix("torch."),
        logprobs_mode="processed_logprobs",  # log-probs after temperature, as the trainer computes them
        limit_mm_per_prompt={"image": 0, "video": max_videos_per_prompt(recipe)},
        enable_prefix_caching=True,  # the G completions of a prompt share its (video) prefix
        # vLLM's device-side pixel normalisation takes its mean/std from the *image* processor, also for
        # videos; rlvid's (and HF's) video processor may differ (tiny Qwen3-VL: CLIP vs 0.5), so let the
        # video processor normalise, as in training.
        mm_device_do_normalize=False,
        **({"max_num_batched_tokens": cfg.max_num_batched_tokens} if cfg.max_num_batched_tokens else {}),
        trust_remote_code=recipe.model.trust_remote_code,  # off unless the recipe says so (docs/security.md)
    )


def create_colocate_engine(recipe, model, processor, builder: VideoInputBuilder, **engine_kwargs) -> VLLMColocateEngine:
    """Start vLLM in this process for the recipe; `model` is the unwrapped policy."""
    vllm = require_vllm("vllm")
    cfg = recipe.rollout.vllm
    rank, local_rank, world = distributed_layout()
    tp = cfg.tensor_parallel_size
    if tp < 1 or world % tp:
        raise ValueError(f"rollout.vllm.tensor_parallel_size={tp} must divide the number of processes ({world})")
    tp_group = None
    if tp > 1:
        tp_group, _ = torch.distributed.new_subgroups_by_enumeration(
            [list(range(g * tp, (g + 1) * tp)) for g in range(world // tp)])
    # The external launcher reads the process layout from the environment, as torchrun sets it.
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(local_rank), WORLD_SIZE=str(world))
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(29500 + os.getpid() % 1000))
    seed = recipe.trainer.seed + rank // tp
    kwargs = llm_kwargs(recipe, model_path(model, recipe), model_dtype(model), seed)
    if vllm_on_cpu():
        os.environ.update(cpu_environment(cfg))
        kwargs = cpu_llm_overrides(cfg, kwargs)
    llm = vllm.LLM(**kwargs)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()  # all vLLM copies are up before training collectives start
    return VLLMColocateEngine(llm, builder, model, vllm.SamplingParams, tp_size=tp, tp_group=tp_group,
                              tp_rank=rank % tp, enable_sleep_mode=kwargs["enable_sleep_mode"], seed=seed,
                              **engine_kwargs)
