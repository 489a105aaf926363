"""Checks across fields and on value ranges, which types alone cannot express."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from pathlib import Path

from rlvid.algos import ADVANTAGE_ESTIMATORS, DPO_LOSSES, KL_ESTIMATORS, LOSS_AGGREGATIONS, POLICY_LOSSES
from rlvid.config.errors import RecipeError
from rlvid.config.schema import Recipe


def validate_recipe(recipe: Recipe, source: str = "recipe", base_dir: str | Path | None = None) -> None:
    """Raise RecipeError naming the first key whose value cannot work; names of registered algorithm pieces
    are checked against their registries (plugins `./file.py:fn` load relative to `base_dir`)."""
    problems = list(_problems(recipe)) + list(_registry_problems(recipe, base_dir))
    if problems:
        key, message = problems[0]
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise RecipeError(f"{source}: '{key}' {message}{more}")


def _problems(r: Recipe):
    t, ro, v, m = r.trainer, r.rollout, r.data.video, r.mdpo
    checks = [
        ("trainer.global_prompts_per_step", t.global_prompts_per_step >= 1, "must be >= 1"),
        ("trainer.micro_batch_size_per_device", t.micro_batch_size_per_device >= 1, "must be >= 1"),
        ("trainer.num_iterations", t.num_iterations >= 1, "must be >= 1"),
        ("trainer.epochs", t.epochs >= 1, "must be >= 1"),
        ("trainer.max_steps", t.max_steps == -1 or t.max_steps >= 1, "must be -1 (use epochs) or >= 1"),
        ("trainer.lr", t.lr >= 0 and math.isfinite(t.lr), "must be a finite number >= 0"),
        ("trainer.warmup_ratio", 0.0 <= t.warmup_ratio <= 1.0, "must be in [0, 1]"),
        ("trainer.weight_decay", t.weight_decay >= 0, "must be >= 0"),
        ("trainer.max_grad_norm", t.max_grad_norm >= 0, "must be >= 0 (0 = no clipping)"),
        ("trainer.epsilon", t.epsilon > 0, "must be > 0"),
        ("trainer.epsilon_high", t.epsilon_high is None or t.epsilon_high > 0, "must be > 0 or null"),
        ("trainer.beta", t.beta >= 0, "must be >= 0"),
        ("trainer.rollout_is_cap", t.rollout_is_cap >= 1.0, "must be >= 1"),
        ("trainer.logging_steps", t.logging_steps >= 1, "must be >= 1"),
        ("trainer.save_steps", t.save_steps >= 0, "must be >= 0 (0 = only at the end)"),
        ("trainer.eval_steps", t.eval_steps >= 0, "must be >= 0 (0 = after each epoch)"),
        ("trainer.resume", t.resume != "", "must be none, auto or a checkpoint path"),
        (
            "rollout.num_generations",
            ro.num_generations >= (2 if t.algorithm == "grpo" else 1),
            "must be >= 2 for grpo (a group of one has no relative advantage)",
        ),
        ("rollout.temperature", ro.temperature > 0, "must be > 0"),
        ("rollout.top_p", 0.0 < ro.top_p <= 1.0, "must be in (0, 1]"),
        ("rollout.top_k", ro.top_k >= -1, "must be >= 0 (0 or -1 = off)"),
        ("rollout.max_new_tokens", ro.max_new_tokens >= 1, "must be >= 1"),
        ("rollout.repetition_penalty", ro.repetition_penalty > 0, "must be > 0"),
        ("rollout.vllm.gpu_memory_utilization", 0.0 < ro.vllm.gpu_memory_utilization <= 1.0, "must be in (0, 1]"),
        ("rollout.vllm.tensor_parallel_size", ro.vllm.tensor_parallel_size >= 1, "must be >= 1"),
        ("rollout.vllm.max_num_batched_tokens", ro.vllm.max_num_batched_tokens >= 0, "must be >= 0 (0 = auto)"),
        ("rollout.vllm.cpu_kvcache_space_gib", ro.vllm.cpu_kvcache_space_gib >= 0, "must be >= 0 (0 = auto)"),
        ("data.max_samples", r.data.max_samples is None or r.data.max_samples >= 1, "must be >= 1 or null"),
        ("data.video.fps", v.fps > 0, "must be > 0"),
        ("data.video.min_frames", 1 <= v.min_frames <= v.max_frames, "must be >= 1 and <= data.video.max_frames"),
        ("data.video.total_pixels", v.total_pixels > 0, "must be > 0"),
        ("data.video.cache_max_bytes", v.cache_max_bytes >= 0, "must be >= 0 (0 = no cache)"),
        ("data.video.stream_chunk_seconds", v.stream_chunk_seconds > 0, "must be > 0"),
        ("data.video.token_drop.mode", v.token_drop.mode != "token" or ro.engine == "hf",
         "token drops visual tokens inside the hf engine's forwards; vLLM engines take frame or patch"),
        ("mdpo.beta", m.beta > 0, "must be > 0"),
        ("mdpo.label_smoothing", 0.0 <= m.label_smoothing < 0.5, "must be in [0, 0.5)"),
        ("mdpo.label_smoothing", m.label_smoothing == 0.0 or m.loss == "sigmoid", "applies to mdpo.loss=sigmoid only"),
        ("mdpo.sft_gamma", m.sft_gamma >= 0, "must be >= 0"),
        ("mdpo.num_samples", m.num_samples >= 2, "must be >= 2 (a pair needs two samples)"),
        ("mdpo.min_gap", m.min_gap >= 0, "must be >= 0"),
        ("mdpo.rounds", m.rounds >= 1, "must be >= 1"),
        ("mdpo.pairs_per_step", m.pairs_per_step >= 1, "must be >= 1"),
        ("mdpo.generation_batch_size", m.generation_batch_size >= 1, "must be >= 1"),
        ("mdpo.pairs_per_prompt", m.pairs_per_prompt >= 0, "must be >= 0 (0 = all)"),
        ("mdpo.margin_scale", m.margin_scale >= 0, "must be >= 0"),
        ("selection.max_tries", r.selection.max_tries >= 1, "must be >= 1"),
        ("streaming.max_response_tokens", r.streaming.max_response_tokens >= 1, "must be >= 1"),
        ("streaming.tolerance", r.streaming.tolerance >= 0, "must be >= 0"),
        ("streaming.synthetic.kinds", bool(r.streaming.synthetic.kinds), "must name at least one kind"),
        ("streaming.synthetic.chunks", r.streaming.synthetic.chunks >= 3, "must be >= 3"),
        ("trainer.algorithm", not r.streaming.enabled or t.algorithm in ("grpo", "mdpo"),
         "must be grpo or mdpo with streaming.enabled (the warm start is sft.steps)"),
        ("streaming.drop_threshold", r.streaming.drop_threshold is None or r.streaming.drop_threshold >= 0,
         "must be >= 0 or null"),
        ("streaming.drop_threshold", r.streaming.drop_threshold is None or r.streaming.model == "qwen_vl",
         "drops visual tokens of streaming.model qwen_vl; the tiny_lm reads one embedding per frame"),
        ("model.path", not (r.streaming.enabled and r.streaming.model == "qwen_vl") or bool(r.model.path),
         "must name the Qwen-VL model folder (or hub id) with streaming.model qwen_vl"),
        ("data.video.token_drop.mode", not (r.streaming.enabled and r.streaming.model == "qwen_vl")
         or v.token_drop.mode == "none", "must be none with streaming.model qwen_vl (use streaming.drop_threshold)"),
    ]
    for key, ok, message in checks:
        if not ok:
            yield key, message
    for i, spec in enumerate(r.rewards.functions):
        if not spec.name:
            yield f"rewards.functions[{i}].name", "must name a reward function"
        if not math.isfinite(spec.weight):
            yield f"rewards.functions[{i}].weight", "must be finite"
    for i, hook in enumerate(r.hooks):
        if hook.every_n_steps < 0:
            yield f"hooks[{i}].every_n_steps", "must be >= 0"
    yield from _env_name_problems(r)
    yield from _format_reward_problems(r)


def _format_reward_problems(r: Recipe):
    """The builtin `format` reward must accept what the prompts ask for (`data.reasoning`): a reward demanding a
    think block the prompt never asks for scores every completion (and every SFT target) 0, and vice versa."""
    entries = [(f"rewards.functions[{i}]", spec.name, spec.kwargs) for i, spec in enumerate(r.rewards.functions)]
    yield from format_reward_problems(entries, r.data.reasoning)


def format_reward_problems(entries: Iterable[tuple[str, str, dict | None]], reasoning: bool):
    """(where, problem) for each `format` entry among (where, reward name, kwargs) that contradicts `reasoning`;
    shared by recipe validation and the Python API's `reward_funcs`."""
    for where, name, kwargs in entries:
        if name != "format":
            continue
        kwargs = kwargs or {}
        think, preset = kwargs.get("think", "required"), kwargs.get("preset")
        if not reasoning and (preset or think == "required"):
            default = "" if "think" in kwargs else " (the default)"
            what = f"preset {preset!r}" if preset else f"think={think!r}{default}"
            yield (where, f"(format, {what}) requires a <think> block, but data.reasoning is false "
                   "(the prompts ask for the answer only); set its kwargs.think to forbidden or optional, "
                   "or data.reasoning: true")
        if reasoning and not preset and think == "forbidden":
            yield (where, "(format, think='forbidden') refuses the <think> block the prompts ask "
                   "for (data.reasoning is true); set data.reasoning: false or kwargs.think: required")


ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _env_name_problems(r: Recipe):
    """Keys that name environment variables hold names, never the secret itself (the value is not echoed)."""
    key_env = r.rollout.vllm.api_key_env
    if key_env is not None and not ENV_NAME.fullmatch(key_env):
        yield "rollout.vllm.api_key_env", "must be the NAME of an environment variable (e.g. RLVID_VLLM_KEY), not a key"
    for i, name in enumerate(r.logging.secret_env):
        if not ENV_NAME.fullmatch(str(name)):
            yield f"logging.secret_env[{i}]", "must be the NAME of an environment variable, not its value"


def _registry_problems(r: Recipe, base_dir: str | Path | None):
    t = r.trainer
    for key, registry, name in [
        ("trainer.policy_loss", POLICY_LOSSES, t.policy_loss),
        ("trainer.loss_agg", LOSS_AGGREGATIONS, t.loss_agg),
        ("trainer.advantage", ADVANTAGE_ESTIMATORS, t.advantage),
        ("trainer.kl_estimator", KL_ESTIMATORS, t.kl_estimator),
        ("mdpo.loss", DPO_LOSSES, r.mdpo.loss),
    ]:
        problem = registry.problem(name, base_dir)
        if problem:
            yield key, problem
