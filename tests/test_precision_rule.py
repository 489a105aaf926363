"""`trainer.precision` against the launcher's mixed_precision (rlvid/trainers/precision.py): one rule, warned."""

from __future__ import annotations

import logging

import pytest

from rlvid.trainers.precision import launcher_precision, resolve_precision


@pytest.mark.parametrize("setting, launcher, on_gpu, used, warned", [
    ("auto", None, True, "bf16", False),  # no launcher (torchrun, python): bf16 on GPU
    ("auto", "fp16", True, "fp16", False),  # auto follows the accelerate config on GPU
    ("auto", "bf16", True, "bf16", False),
    ("auto", None, False, "no", False),  # fp32 on CPU
    ("auto", "bf16", False, "no", True),  # the config's bf16 is not used on CPU, and that is said
    ("no", "bf16", True, "no", True),  # an explicit setting wins over the config, with a warning
    ("bf16", "fp16", True, "bf16", True),
    ("bf16", "bf16", True, "bf16", False),
    ("fp16", None, True, "fp16", False),
    ("bf16", None, False, "bf16", False),  # explicit bf16 on CPU is honoured
])
def test_one_rule(setting, launcher, on_gpu, used, warned):
    value, warning = resolve_precision(setting, launcher, on_gpu)
    assert value == used
    assert (warning is not None) == warned, warning
    if warned:
        assert str(launcher) in warning and "trainer.precision" in warning


@pytest.mark.parametrize("env, expected", [(None, None), ("no", None), ("bf16", "bf16"), ("FP16", "fp16")])
def test_launcher_value_from_accelerate_launch_env(monkeypatch, env, expected):
    if env is None:
        monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    else:
        monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", env)
    assert launcher_precision() == expected  # accelerate writes "no" when nothing was asked: counts as unset


def test_make_accelerator_warns_when_the_config_is_overridden(monkeypatch, caplog):
    from types import SimpleNamespace

    import torch

    from rlvid.trainers import loop

    made = {}
    monkeypatch.setattr(loop, "Accelerator", lambda **kw: made.update(kw) or SimpleNamespace(**kw))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    monkeypatch.delenv("ACCELERATE_USE_DEEPSPEED", raising=False)
    recipe = SimpleNamespace(trainer=SimpleNamespace(precision="auto", collective_timeout_s=60))
    with caplog.at_level(logging.WARNING, logger="rlvid.trainers"):
        loop.make_accelerator(recipe)
    assert made["mixed_precision"] == "no" and made["cpu"] is True
    assert "mixed_precision=bf16 from the accelerate config" in caplog.text

    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")  # a DeepSpeed launch is honoured on CPU too
    loop.make_accelerator(recipe)
    assert made["cpu"] is False
