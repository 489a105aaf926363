"""Real-vLLM tests (CPU or GPU): `vllm` must be importable; scripts/setup.sh installs vLLM's CPU build.

Without vLLM they skip with the reason, except under CI (`CI` set), where a missing vLLM is a
setup bug and fails them.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    if importlib.util.find_spec("vllm") is not None or os.environ.get("CI"):
        return
    skip = pytest.mark.skip(reason="needs vLLM: bash scripts/setup.sh installs its CPU build (docs/vllm.md)")
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def vllm_root(tmp_path_factory) -> Path:
    """Model folders and data shared by the scenarios of one session."""
    return tmp_path_factory.mktemp("vllm")
