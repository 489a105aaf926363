"""Weight reloading inside a vLLM worker, through vLLM's own layerwise reload path (run via `collective_rpc`).

A push is three steps, as vLLM's `Worker.reload_weights` and its weight-transfer engines do it:

1. `begin_reload_on_worker`: `initialize_layerwise_reload` puts every layer back into checkpoint
   format (on the meta device) and wraps its weight loaders, which buffer what arrives;
2. `load_weights_on_worker`, once per bucket: the model's `load_weights` (checkpoint names). A
   layer is loaded, processed (CPU GEMM repacking, quantization, ...) and copied into its original
   storage as soon as all its tensors have arrived, so a layer whose tensors straddle two buckets
   is finalised once, after the second;
3. `finish_reload_on_worker`: layers that got only part of their tensors are an error (they would
   be filled with uninitialised memory); `finalize_layerwise_reload` puts the untouched layers'
   tensors back and processes attention layers; then tied LM heads are re-tied to their embedding
   and re-processed (vLLM's reload processes a shared tensor for one owner only, so the CPU
   backend's packed copy of the LM head would keep the old weights).

Loading straight into the processed model (`model.load_weights` outside this path) breaks on CPU:
its GEMM dispatch replaces linear layers' `weight` with packed copies that have no `weight_loader`.
"""

from __future__ import annotations

import logging

import torch


def worker_model(worker) -> torch.nn.Module:
    """The worker's model (vLLM's `Worker.get_model`, or its model runner's)."""
    get_model = getattr(worker, "get_model", None)
    return get_model() if callable(get_model) else worker.model_runner.model


def _vllm_config(worker):
    return getattr(worker, "vllm_config", None) or worker.model_runner.vllm_config


def _tied_heads(model: torch.nn.Module) -> list[tuple[str, str]]:
    """(LM head, embedding) module names whose weight is one shared parameter."""
    from vllm.model_executor.layers.vocab_parallel_embedding import ParallelLMHead, VocabParallelEmbedding

    modules = dict(model.named_modules(remove_duplicate=False))
    embeds = {id(m.weight): n for n, m in modules.items()
              if isinstance(m, VocabParallelEmbedding) and not isinstance(m, ParallelLMHead)
              and isinstance(getattr(m, "weight", None), torch.Tensor)}
    return [(n, embeds[id(m.weight)]) for n, m in modules.items()
            if isinstance(m, ParallelLMHead) and id(getattr(m, "weight", None)) in embeds]


def begin_reload_on_worker(worker) -> list[tuple[str, str]]:
    """Step 1: layers back to checkpoint format, loaders buffering; returns the tied (head, embedding) pairs."""
    from vllm.config import set_current_vllm_config
    from vllm.model_executor.model_loader.reload import initialize_layerwise_reload

    model = worker_model(worker)
    tied = _tied_heads(model)
    worker._rlvid_tied_heads = tied
    with set_current_vllm_config(_vllm_config(worker)):
        initialize_layerwise_reload(model)
    return tied


def load_weights_on_worker(worker, weights: list[tuple[str, torch.Tensor]]) -> list[str]:
    """Step 2 (per bucket): load checkpoint-named tensors, return the vLLM parameter names written."""
    from vllm.config import set_current_vllm_config

    with set_current_vllm_config(_vllm_config(worker)), torch.no_grad():
        loaded = worker_model(worker).load_weights(weights)
    return sorted(loaded) if loaded is not None else []


def partially_loaded_layers(model: torch.nn.Module) -> list[str]:
    """Layers that received some but not all of their tensors since `begin_reload_on_worker`.

    Vocabulary embeddings are left out: their rows are padded to a multiple of 64 and the padding
    rows (never looked up, their logits cut off) count as unloaded.
    """
    from vllm.model_executor.layers.vocab_parallel_embedding import VocabParallelEmbedding
    from vllm.model_executor.model_loader.reload.layerwise import get_layerwise_info

    partial = []
    for name, layer in model.named_modules():
        info = get_layerwise_info(layer)
        if isinstance(layer, VocabParallelEmbedding):
            continue
        if info.can_load() and 0 < info.load_numel < info.load_numel_total:
            partial.append(f"{name or type(layer).__name__} ({info.load_numel}/{info.load_numel_total} elements)")
    return partial


def finish_reload_on_worker(worker, quiet_untouched: bool = True) -> list[str]:
    """Step 3: finalise every layer, re-tie and re-process tied LM heads; returns the partially loaded layers.

    A non-empty result means the push was incomplete: those layers are finalised anyway (vLLM
    cannot leave them half-built) and the caller raises. `quiet_untouched` silences vLLM's
    per-layer "Failed to load weights" warning for layers the push did not touch (they keep their
    tensors): buffer-only layers (rotary caches) on every push, frozen layers on a partial one.
    """
    from vllm.config import set_current_vllm_config
    from vllm.model_executor.model_loader.reload import finalize_layerwise_reload

    model = worker_model(worker)
    config = _vllm_config(worker)
    partial = partially_loaded_layers(model)
    reload_logger = logging.getLogger("vllm.model_executor.model_loader.reload.layerwise")
    level = reload_logger.level
    if quiet_untouched:
        reload_logger.setLevel(logging.ERROR)
    try:
        with set_current_vllm_config(config), torch.no_grad():
            finalize_layerwise_reload(model, config.model_config)
            modules = dict(model.named_modules(remove_duplicate=False))
            for head_name, embed_name in getattr(worker, "_rlvid_tied_heads", []):
                head, embed = modules[head_name], modules[embed_name]
                if head.weight is not embed.weight:
                    head.weight = embed.weight
                head.quant_method.process_weights_after_loading(head)  # CPU: re-pack the new values
    finally:
        reload_logger.setLevel(level)
    return partial


def packed_modules_on_worker(worker) -> dict[str, list[str]]:
    """The model's fused-layer table (e.g. qkv_proj <- q_proj, k_proj, v_proj): one vLLM layer per group."""
    return {k: list(v) for k, v in getattr(worker_model(worker), "packed_modules_mapping", {}).items()}


def parameter_names_on_worker(worker) -> list[str]:
    """The names of the model's parameters, tied ones (same storage) once."""
    names, seen = [], set()
    for name, param in worker_model(worker).named_parameters():
        key = param.data_ptr() if param is not None and param.numel() else name
        if key not in seen:
            seen.add(key)
            names.append(name)
    return names
