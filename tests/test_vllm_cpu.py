"""CPU settings of the colocated vLLM engine (rlvid/rollout/vllm_cpu.py): no vLLM needed."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from rlvid.rollout.vllm_cpu import (
    CPU_MAX_NUM_BATCHED_TOKENS,
    SplitPrefillError,
    cpu_environment,
    cpu_list,
    cpu_llm_overrides,
    explain_split_prefill,
)


def settings(**kw):
    return SimpleNamespace(**{"cpu_kvcache_space_gib": 0.0, "cpu_threads_bind": "auto", "max_num_batched_tokens": 0,
                              **kw})


def test_cores_are_written_as_vllm_bind_ranges():
    assert cpu_list({0, 1}) == "0-1"
    assert cpu_list([3, 0, 1, 2, 6, 8, 9]) == "0-3,6,8-9"
    assert cpu_list([5]) == "5"


def test_recipe_settings_win_over_the_environment_which_wins_over_defaults(monkeypatch):
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
    monkeypatch.delenv("VLLM_CPU_OMP_THREADS_BIND", raising=False)
    env = cpu_environment(settings())
    assert 1 <= int(env["VLLM_CPU_KVCACHE_SPACE"]) <= 4 and env["VLLM_CPU_OMP_THREADS_BIND"]
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "3")
    monkeypatch.setenv("VLLM_CPU_OMP_THREADS_BIND", "1")
    assert cpu_environment(settings()) == {}  # the environment's values stay
    assert cpu_environment(settings(cpu_kvcache_space_gib=0.5, cpu_threads_bind="0-1")) == {
        "VLLM_CPU_KVCACHE_SPACE": "0.5", "VLLM_CPU_OMP_THREADS_BIND": "0-1"}


def test_sleep_mode_is_turned_off_with_a_warning_and_the_token_budget_raised(caplog):
    kwargs = cpu_llm_overrides(settings(), {"enable_sleep_mode": True, "model": "m"})
    assert kwargs == {"enable_sleep_mode": False, "model": "m", "max_num_batched_tokens": CPU_MAX_NUM_BATCHED_TOKENS}
    assert "not supported by vLLM on CPU" in caplog.text
    assert "max_num_batched_tokens" not in cpu_llm_overrides(settings(max_num_batched_tokens=512), {})


def test_a_split_prefill_crash_says_which_setting_to_raise():
    err = explain_split_prefill(RuntimeError("CPU Generator does not use offset"))
    assert isinstance(err, SplitPrefillError) and "rollout.vllm.max_num_batched_tokens" in str(err)
    other = RuntimeError("something else")
    assert explain_split_prefill(other) is other
    with pytest.raises(SplitPrefillError):
        raise err
