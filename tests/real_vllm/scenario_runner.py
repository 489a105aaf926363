"""Run one tests/real_vllm/scenarios.py scenario in a fresh process and read back its figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def run_scenario(name: str, root: Path, *args: str, timeout: int = 600) -> dict:
    """Run tests/real_vllm/scenarios.py NAME in a fresh process (one vLLM engine per process); its JSON figures.

    With RLVID_VLLM_REPORT=PATH set, each scenario's figures are also appended to PATH as a JSON line.
    """
    out = root / f"{name}-{'-'.join(args)}.json"
    path = [str(REPO), str(REPO / "tests"), os.environ.get("PYTHONPATH", "")]  # rlvid and tiny_setup
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    proc = subprocess.run([sys.executable, str(HERE / "scenarios.py"), name, str(root), str(out), *args],
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO)
    if proc.returncode != 0:
        raise AssertionError(f"scenario {name} {args} failed ({proc.returncode}):\n{proc.stderr[-6000:]}")
    result = json.loads(out.read_text())
    report = os.environ.get("RLVID_VLLM_REPORT")  # collect the figures of a run, e.g. for docs/vllm.md
    if report:
        with open(report, "a") as f:
            f.write(json.dumps({"scenario": name, "args": list(args), **result}) + "\n")
    return result
