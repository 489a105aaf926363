"""Imports point down the layers of docs/architecture.md: a module imports its own unit or lower floors only.

Every import statement counts, the lazy ones inside functions too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("rlvid", "rewards", "data_selection")

# floor -> units (a unit is a package or module; the longest matching prefix names a module's unit)
LAYERS: list[tuple[str, ...]] = [
    ("rlvid", "rlvid.timing", "rlvid.plugins", "rlvid.redact", "rlvid.safe_paths"),  # 0 ground (docs/architecture.md)
    ("rlvid.algos",),  # 1 pure loss / advantage / KL math and its registries
    ("rlvid.config",),  # 2 the recipe schema, loading, validation (names checked against the registries)
    ("rlvid.data",),  # 3 samples, video, prompts, model-input builder
    ("rlvid.models", "rewards"),  # 4 loading / tiny models / vision seam; reward functions and scoring
    ("rlvid.policy",),  # 5 the model on video prompts: encode, log-probs, generate
    ("rlvid.rollout", "rlvid.eval"),  # 6 rollout engines; metrics and greedy prediction
    ("data_selection",),  # 7 variance-aware selection: stats, strategies, online filters, the collector
    ("rlvid.trainers",),  # 8 the training loop, GRPO, SFT, M-DPO
    ("rlvid.app", "rlvid.plot"),  # 9 composition root and commands
    ("rlvid.cli", "rlvid.api"),  # 10 the argument parser; the Python API (TRL-shaped trainers)
    ("rlvid.__main__",),  # 11 python -m rlvid
]
FLOOR = {unit: floor for floor, units in enumerate(LAYERS) for unit in units}
# (module, target) pairs allowed to point up: the package root re-exports the Python API lazily (PEP 562), so
# `from rlvid import GRPOTrainer` works while `import rlvid` imports nothing.
FACADES = {("rlvid", "rlvid.api")}


def unit_of(module: str) -> str:
    parts = module.split(".")
    for k in range(len(parts), 0, -1):
        if ".".join(parts[:k]) in FLOOR:
            return ".".join(parts[:k])
    raise KeyError(module)


def modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def imports_of(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return [(line, name) for line, name in found if name.split(".")[0] in PACKAGES]


def test_every_module_has_a_floor():
    assert [m for m in modules() if not _has_unit(m)] == []


def _has_unit(module: str) -> bool:
    try:
        unit_of(module)
    except KeyError:
        return False
    return True


def test_imports_point_down_the_layers():
    wrong = []
    for module, path in modules().items():
        unit = unit_of(module)
        for line, target in imports_of(path):
            other = unit_of(target)
            if (module, target) in FACADES:
                continue
            if other != unit and FLOOR[other] >= FLOOR[unit]:
                wrong.append(f"{path.relative_to(ROOT)}:{line}: {unit} (floor {FLOOR[unit]}) imports {target} "
                             f"(floor {FLOOR[other]})")
    assert wrong == []


@pytest.mark.parametrize("source, allowed", [("from rlvid.trainers.loop import Trainer", False),
                                             ("from rlvid.timing import subphase", True)])
def test_the_check_sees_an_upward_import(tmp_path, source, allowed):
    (tmp_path / "m.py").write_text(source + "\n")
    ((line, target),) = imports_of(tmp_path / "m.py")
    assert (FLOOR[unit_of(target)] < FLOOR[unit_of("rlvid.policy.policy")]) == allowed
