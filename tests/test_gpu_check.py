"""scripts/gpu_check.py --rehearse: every part of the GPU check runs on CPU with tiny shapes, so the script cannot rot.

What this CPU rehearsal does NOT exercise (the GPU run does):
- FSDP2 sharding itself: accelerate turns FSDP on only for GPU process groups, so under `accelerate launch
  --config_file recipes/accelerate/fsdp2.yaml` on CPU the model stays unsharded (no DTensor parameters).
  The launch, the GRPO step, the weight-gather iteration, checkpoint save and bitwise resume equality run.
- DeepSpeed (zero2, zero3, zero3_offload_7b) where deepspeed is not importable, as in CI (the project does not
  install it; the GPU run carries its wheel). Then those parts must be reported as skipped with the reason.
  Where deepspeed is importable (a developer's machine with its wheel on PYTHONPATH), ZeRO-2/3 run on
  DeepSpeed's CPU accelerator; the CPU-offload part additionally JIT-compiles DeepSpeed's cpu_adam.
- bf16, CUDA memory figures, MFU (no GPU peak on a CPU), real sizes (a 4k-vocabulary 2-layer stand-in shape).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))


@pytest.mark.slow
def test_rehearsal_runs_every_part(tmp_path):
    out = tmp_path / "rehearse.json"
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", WANDB_MODE="disabled")
    cmd = [sys.executable, str(REPO / "scripts" / "gpu_check.py"), "--rehearse", "--out", str(out),
           "--work", str(tmp_path / "work"), "--budget", "400"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=460, cwd=REPO)
    report = json.loads(out.read_text())
    parts = report["parts"]
    assert list(parts) == ["prepare", "grpo_on", "grpo_off", "lora_7b", "fsdp2", "zero2", "zero3",
                           "zero3_offload_7b"], proc.stdout[-3000:]
    for name in ("prepare", "grpo_on", "grpo_off", "lora_7b", "fsdp2"):
        assert parts[name]["status"] == "ok", (name, parts[name])
    new_tokens = report["settings"]["new_tokens"]
    for name in ("grpo_on", "grpo_off"):
        r = parts[name]
        assert r["completion_tokens"] == new_tokens  # fixed-length completions: equal work in every run
        assert r["prompt_tokens"] > r["visual_tokens_per_prompt"] > 0
        assert r["generated_tokens_per_s"] > 0 and r["training_tokens_per_s"] > 0
        assert {"gen", "update_actor", "old", "ref", "step"} <= set(r["phases_s"])
        assert r["model_flop_per_step"] > 0
    assert parts["grpo_on"]["vision_reused"] > 0 and parts["grpo_off"]["vision_reused"] == 0  # options really on/off
    fsdp = parts["fsdp2"]
    assert fsdp["resume_state_equal"] is True and fsdp["step_param_change"] > 0
    assert fsdp["resume_step_max_abs_diff"] == 0.0  # the resumed step repeats the original exactly (fp32 CPU)
    assert fsdp["gathered_tensors"] > 0 and "DTensor" in fsdp["not_exercised"]
    if importlib.util.find_spec("deepspeed") is None:
        for name in ("zero2", "zero3", "zero3_offload_7b"):
            assert parts[name]["status"] == "skipped" and "deepspeed is not importable" in parts[name]["reason"]
    else:
        for name, stage in (("zero2", 2), ("zero3", 3)):
            assert parts[name]["status"] == "ok" and parts[name]["zero_stage"] == stage, parts[name]
            # one optimizer update per GRPO step (num_iterations 1) although a step has several micro-batches
            assert parts[name]["optimizer_updates_per_step"] == [1, 1], parts[name]
            assert parts[name]["deepspeed_batch"]["train_micro_batch_size_per_gpu"] == report["settings"]["micro_batch"]
    assert "efficiency options on vs off" in proc.stdout and "| status |" in proc.stdout
    assert proc.returncode == (0 if all(p["status"] in ("ok", "skipped") for p in parts.values()) else 1)


def test_table_and_skips_are_reported_without_running_anything(tmp_path):
    import gpu_check

    results = {"grpo_on": {"status": "ok", "wall_s": 1.0, "step_s": 2.0, "peak_alloc_gib": 30.0},
               "grpo_off": {"status": "ok", "wall_s": 1.0, "step_s": 5.0},
               "zero2": {"status": "skipped", "reason": "deepspeed is not importable"}}
    text = gpu_check.table(results)
    assert "off / on = 2.50x" in text and "30.0" in text and "reason=deepspeed is not importable" in text
    settings = dict(gpu_check.REAL)
    reason = gpu_check.host_memory_missing(settings)
    have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    assert (reason is not None) == (have < 139 * 1.1)  # 8.29e9 params x 18 B = 139 GiB for ZeRO-3 offload


def test_unknown_part_is_refused(capsys):
    import gpu_check

    with pytest.raises(SystemExit):
        gpu_check.main(["--rehearse", "--parts", "grpo,zero4"])
    assert "unknown parts ['grpo', 'zero4']" in capsys.readouterr().err


def test_missing_wheels_stop_the_check_before_any_part(monkeypatch, capsys, tmp_path):
    import gpu_check

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "omegaconf" else
                        real_find_spec(name, *a))
    assert gpu_check.main(["--rehearse", "--work", str(tmp_path), "--out", str(tmp_path / "o.json")]) == 2
    err = capsys.readouterr().err
    assert "not importable here: omegaconf" in err and "scripts/gpu_wheels.sh" in err
    assert not (tmp_path / "o.json").exists()
