"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic dataset (n=24, seed=0: 20 train, 2 val, 2 test clips of 6-10 s at 8 fps, 128x96)."""
    from rlvid.data.synthetic import make_synthetic_data

    return make_synthetic_data(tmp_path_factory.mktemp("synthetic"), n=24, seed=0)


@pytest.fixture(scope="session")
def vl_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny random Qwen2.5-VL and Qwen3-VL folder each (rlvid make-tiny-model)."""
    from rlvid.models.tiny import make_tiny_model

    root = tmp_path_factory.mktemp("vl_models")
    return {arch: make_tiny_model(root / arch, arch) for arch in ("qwen2_5_vl", "qwen3_vl")}


@pytest.fixture(scope="session")
def grounding_prompts(synthetic_dir: Path) -> list:
    """Three temporal-grounding samples with prompts of different lengths (so batches are padded)."""
    import dataclasses

    from rlvid.data.loaders import load_samples

    rows = [s for s in load_samples(str(synthetic_dir / "train.jsonl"), split="train").samples
            if s.task == "temporal_grounding"][:3]
    return [rows[0], dataclasses.replace(rows[1], question=rows[1].question + " Watch every frame closely."), rows[2]]


@pytest.fixture
def one_thread():
    """One intra-op thread: the learning tests' tiny forwards run ~10x slower with 2 threads on 2 shared cores."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
