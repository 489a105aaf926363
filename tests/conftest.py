"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic dataset (n=24, seed=0: 20 train, 2 val, 2 test clips of 6-10 s at 8 fps, 128x96)."""
    from rlvid.data.synthetic import make_synthetic_data

    return make_synthetic_data(tmp_path_factory.mktemp("synthetic"), n=24, seed=0)
