"""GPU-only tests: skipped without CUDA or without vLLM; shared model folders (helpers in gpu_helpers.py)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parent


def _skip_reason() -> str | None:
    if not torch.cuda.is_available():
        return "needs a CUDA GPU"
    if importlib.util.find_spec("vllm") is None:
        return "needs vLLM: pip install 'rlvid[vllm]' (tests/gpu/README.md)"
    return None


def pytest_collection_modifyitems(config, items):
    reason = _skip_reason()
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.gpu)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def gpu_root(tmp_path_factory) -> Path:
    """Where model folders and data live; RLVID_GPU_CACHE keeps them between runs."""
    root = os.environ.get("RLVID_GPU_CACHE")
    if root:
        Path(root).mkdir(parents=True, exist_ok=True)
        return Path(root)
    return tmp_path_factory.mktemp("gpu")


@pytest.fixture(scope="session")
def model_3b(gpu_root) -> Path:
    from gpu_helpers import make_shaped_model

    return make_shaped_model(gpu_root / "qwen2_5_vl-3b-shape", "3b")


@pytest.fixture(scope="session")
def tiny_setup(gpu_root) -> dict[str, Path]:
    from tiny_setup import make_tiny_setup

    return make_tiny_setup(gpu_root / "tiny", n=40)

