"""recipes/accelerate/*.yaml work on the machine they run on (issue 15, item 7).

They name no process count (the old `num_processes: 8` started 8 failing processes on a CPU machine): accelerate
asks for `--num_processes` at once, and with it the DDP config runs on a CPU-only machine (MULTI_CPU over gloo),
with the config's bf16 reported as unused there (rlvid/trainers/precision.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "recipes" / "accelerate").glob("*.yaml"))

SCRIPT = """
from types import SimpleNamespace
from rlvid.trainers.loop import make_accelerator
acc = make_accelerator(SimpleNamespace(trainer=SimpleNamespace(precision="auto", collective_timeout_s=60)))
import os
# one write per line (print writes its pieces separately, and two processes share the pipe)
os.write(1, f"RESULT {acc.process_index} {acc.num_processes} {acc.distributed_type} {acc.mixed_precision}\\n".encode())
acc.wait_for_everyone()
"""


def test_configs_name_no_process_count():
    assert {c.stem for c in CONFIGS} >= {"ddp", "fsdp2", "zero2", "zero3"}
    for config in CONFIGS:
        data = yaml.safe_load(config.read_text())
        assert "num_processes" not in data, config  # passed with --num_processes N on the machine at hand
        assert "--num_processes N" in config.read_text(), config  # and the file says so
        ds = data.get("deepspeed_config", {})
        assert "gradient_accumulation_steps" not in ds and "gradient_clipping" not in ds, config  # from the recipe


def launch(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    script = tmp_path / "acc.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="",
               PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p))
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
           str(REPO / "recipes" / "accelerate" / "ddp.yaml"), *args, str(script)]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)


def test_without_num_processes_accelerate_stops_before_starting_any(tmp_path):
    proc = launch(tmp_path)
    assert proc.returncode != 0
    assert "You need to manually pass in `--num_processes`" in proc.stderr
    assert "RESULT" not in proc.stdout


@pytest.mark.slow
def test_ddp_config_runs_two_processes_on_a_cpu_machine(tmp_path):
    proc = launch(tmp_path, "--num_processes", "2", "--main_process_port", "0")
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = sorted(line for line in proc.stdout.splitlines() if line.startswith("RESULT"))
    assert lines == ["RESULT 0 2 DistributedType.MULTI_CPU no", "RESULT 1 2 DistributedType.MULTI_CPU no"], proc.stdout
    assert "mixed_precision=bf16 from the accelerate config / --mixed_precision is not used without a GPU" \
        in proc.stderr
