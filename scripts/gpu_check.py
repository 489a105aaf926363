"""GPU readiness check: real-size GRPO through every distributed path, one command, each part in its own process.

    python scripts/gpu_check.py --out gpu_check.json           # on a GPU (one H100 / H200), ~6 min
    python scripts/gpu_check.py --rehearse --out rehearse.json  # every part on CPU with tiny shapes (CI)

Parts (each a subprocess with a hard wall-clock limit; one failure does not stop the rest):

    prepare           random bf16 models of the published Qwen2.5-VL-3B / -7B shapes, synthetic videos
    grpo_on/grpo_off  GRPO, hf engine, 3B shape, 64 frames, G=8, bf16, gradient checkpointing: median phase
                      times, peak memory, generated / training tokens/s, MFU; efficiency options on vs off
    fsdp2             the same step through accelerate + FSDP2 (one process): DTensor parameters, the
                      weight-gather path, checkpoint save + resume equality
    zero2, zero3      accelerate + DeepSpeed ZeRO-2 / ZeRO-3 (one process); needs the deepspeed wheel
    lora_7b           7B shape with LoRA: does a step fit, peak memory
    zero3_offload_7b  7B full fine-tuning with ZeRO-3 parameter + optimizer offload to CPU

The GPU image has no deepspeed, omegaconf, PyAV or TRL: bring them as wheels (scripts/gpu_wheels.sh,
docs/gpu.md). Completions are fixed-length (min_new_tokens = max_new_tokens), so every run does the
same work. Results: a JSON file (one object per part, plus the device) and a printed table.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WORKER = HERE / "gpu_check_worker.py"
ACCELERATE = REPO / "recipes" / "accelerate"

# Sizes of the real check: 64 frames of at most 25,088 pixels (the default budget's shape: 140x168 px for these
# 4:3 clips, 960 visual tokens per video, 1,077-token prompts), G=8, 2 prompts per step, 128-token completions.
REAL = {
    "rehearse": False, "dtype": "bf16", "models": {"3b": ["qwen2_5_vl", "3b"], "7b": ["qwen2_5_vl", "7b"]},
    "synthetic": {"n": 24, "fps": 8, "width": 224, "height": 168, "duration": 8.5},
    "frames": 64, "pixels_per_frame": 25088, "group": 8, "prompts": 2, "micro_batch": 4,
    "new_tokens": 128, "dist_new_tokens": 32, "max_completion": 128, "steps": 3, "warmup": 1, "dist_steps": 2,
}
# The rehearsal: the same parts and code paths at sizes a 2-core CPU runs in about a minute.
REHEARSE = {
    "rehearse": True, "dtype": "fp32", "models": {"3b": ["qwen2_5_vl", "rehearsal"], "7b": ["qwen2_5_vl", "rehearsal"]},
    "synthetic": {"n": 10, "fps": 4, "width": 64, "height": 48, "duration": 2.0},
    "frames": 4, "pixels_per_frame": 3136, "group": 4, "prompts": 2, "micro_batch": 4,
    "new_tokens": 6, "dist_new_tokens": 4, "max_completion": 6, "steps": 1, "warmup": 0, "dist_steps": 2,
}


def launcher(config: str | None, extra: list[str] | None = None) -> list[str]:
    """`accelerate launch` with one of recipes/accelerate/*.yaml on one process (None: plain python)."""
    if config is None:
        return [sys.executable]
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(ACCELERATE / config),
           "--num_processes", "1", "--num_machines", "1", "--main_process_port", "0"]
    return cmd + (extra or [])


OFFLOAD = ["--use_deepspeed", "--zero_stage", "3", "--offload_param_device", "cpu", "--offload_optimizer_device",
           "cpu", "--zero3_init_flag", "true", "--mixed_precision", "bf16", "--num_processes", "1",
           "--num_machines", "1", "--main_process_port", "0"]


# name: (launcher command, wall-clock limit on a GPU in s, limit in --rehearse in s, what it needs)
PARTS = {
    "prepare": ([sys.executable], 150, 60, set()),
    "grpo_on": ([sys.executable], 80, 60, {"3b"}),
    "grpo_off": ([sys.executable], 90, 60, {"3b"}),
    "lora_7b": ([sys.executable], 80, 60, {"7b"}),
    "fsdp2": (launcher("fsdp2.yaml"), 120, 90, {"3b"}),
    "zero2": (launcher("zero2.yaml"), 75, 90, {"3b", "deepspeed"}),
    "zero3": (launcher("zero3.yaml"), 90, 90, {"3b", "deepspeed"}),
    "zero3_offload_7b": ([sys.executable, "-m", "accelerate.commands.launch", *OFFLOAD], 150, 90,
                         {"7b", "deepspeed", "host_memory"}),
}


# rlvid's own needs that the GPU image lacks (module -> wheel); deepspeed only matters to the ZeRO parts.
NEEDED_MODULES = {"omegaconf": "omegaconf", "av": "av (PyAV)", "trl": "trl", "datasets": "datasets",
                  "dill": "dill", "multiprocess": "multiprocess"}


def missing_packages() -> list[str]:
    """Wheels that must be installed before any part can run (checked first: a missing one fails every part)."""
    return [wheel for module, wheel in NEEDED_MODULES.items() if importlib.util.find_spec(module) is None]


def deepspeed_missing() -> str | None:
    if importlib.util.find_spec("deepspeed") is None:
        return "deepspeed is not importable: bring its wheel (scripts/gpu_wheels.sh, docs/gpu.md)"
    return None


def host_memory_missing(settings: dict) -> str | None:
    """ZeRO-3 offload of the 7B shape keeps fp32 master weights, Adam moments and gradients on the host."""
    if settings["rehearse"]:
        return None
    sys.path.insert(0, str(HERE))
    from gpu_estimates import zero3_offload_host_gib

    need = zero3_offload_host_gib(8.292e9)
    have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    if have < need * 1.1:
        return (f"skipped: full FT of the 7B shape with ZeRO-3 offload needs ~{need:.0f} GiB of host memory "
                f"(fp32 master + Adam + grads, 18 B/param), this machine has {have:.0f} GiB (--force-offload runs it)")
    return None


def run_part(name: str, cmd: list[str], work: Path, limit: float, env: dict) -> dict:
    """Run one part in a new process group; kill the whole group at `limit` seconds."""
    log = work / f"{name}.log"
    env = dict(env, RLVID_GPU_CHECK_DUMP_S=str(max(limit - 5, 1)))  # stacks in the log just before a kill
    start = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.Popen([*cmd, str(WORKER), name, str(work)], stdout=f, stderr=subprocess.STDOUT,
                                env=env, cwd=REPO, start_new_session=True)
        try:
            rc = proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            rc = None
    wall = round(time.perf_counter() - start, 1)
    result_file = work / f"{name}.json"
    if rc == 0 and result_file.is_file():
        figures = json.loads(result_file.read_text())
        return {"status": "problem" if figures.get("problems") else "ok", "wall_s": wall, **figures}
    tail = log.read_text(errors="replace").strip().splitlines()[-15:]
    status = f"timeout after {limit:.0f} s" if rc is None else f"failed (exit {rc})"
    return {"status": status, "wall_s": wall, "log_tail": tail, "log": str(log)}


def device_info() -> dict:
    import torch

    info = {"torch": torch.__version__, "cuda": torch.version.cuda, "python": sys.version.split()[0]}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(device=torch.cuda.get_device_name(0), gpu_memory_gib=round(props.total_memory / 1024**3, 1))
    else:
        info["device"] = "cpu"
    for pkg in ("transformers", "accelerate", "peft", "deepspeed"):
        spec = importlib.util.find_spec(pkg)
        info[pkg] = __import__(pkg).__version__ if spec else None
    return info


def table(results: dict) -> str:
    cols = ["part", "status", "wall s", "step s", "peak GiB", "gen tok/s", "train tok/s", "MFU", "notes"]
    lines = [" | ".join(cols), " | ".join("---" for _ in cols)]
    for name, r in results.items():
        peak = r.get("peak_alloc_gib", r.get("peak_rss_gib"))
        notes = []
        for key in ("resume_state_equal", "resume_step_max_abs_diff", "dtensor_params", "zero_stage",
                    "optimizer_updates_per_step", "gathered_gib", "visual_tokens_per_prompt", "reason",
                    "not_exercised", "deepspeed_batch", "problems"):
            if key in r:
                notes.append(f"{key}={r[key]}")
        if r["status"] != "ok" and "log_tail" in r:
            notes.append(r["log_tail"][-1][:100] if r["log_tail"] else "")
        lines.append(" | ".join(str(x) for x in [
            name, r["status"], r.get("wall_s", ""), r.get("step_s", ""), "" if peak is None else f"{peak:.1f}",
            r.get("generated_tokens_per_s", ""), r.get("training_tokens_per_s", ""), r.get("mfu_step", ""),
            "; ".join(notes)]))
    if "grpo_on" in results and "grpo_off" in results and results["grpo_on"].get("step_s"):
        off, on = results["grpo_off"].get("step_s"), results["grpo_on"]["step_s"]
        if off:
            lines.append(f"\nefficiency options on vs off: step time off / on = {off / on:.2f}x ({off} s -> {on} s)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rehearse", action="store_true", help="every part on CPU with tiny shapes")
    ap.add_argument("--out", default="gpu_check.json")
    ap.add_argument("--work", default=None, help="models, data and logs (default: /tmp/rlvid-gpu-check[-rehearse])")
    ap.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
    ap.add_argument("--budget", type=float, default=470.0, help="seconds for all parts together (hard)")
    ap.add_argument("--limit-scale", type=float, default=1.0, help="multiply every part's wall-clock limit")
    ap.add_argument("--steps", type=int, default=None, help="measured GRPO steps per single-GPU part (default 3)")
    ap.add_argument("--force-offload", action="store_true", help="run zero3_offload_7b even if host memory looks short")
    args = ap.parse_args(argv)
    settings = dict(REHEARSE if args.rehearse else REAL)
    if args.steps is not None:
        settings["steps"] = args.steps
    names = [p for p in args.parts.split(",") if p]
    unknown = sorted(set(names) - set(PARTS))
    if unknown:
        ap.error(f"unknown parts {unknown}; allowed: {list(PARTS)}")
    if "prepare" not in names:
        names.insert(0, "prepare")
    missing = missing_packages()
    if missing:
        print(f"[gpu_check] not importable here: {', '.join(missing)}. Bring the wheels: `bash scripts/gpu_wheels.sh` "
              "on a machine with a package index, carry wheels/, and install them first (docs/gpu.md):\n"
              "  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site wheels/*.whl "
              "&& export PYTHONPATH=/tmp/site:$PWD", file=sys.stderr)
        return 2
    settings["model_roles"] = sorted({need for n in names for need in PARTS[n][3] if need in ("3b", "7b")})
    work = Path(args.work or f"/tmp/rlvid-gpu-check{'-rehearse' if args.rehearse else ''}")
    work.mkdir(parents=True, exist_ok=True)
    (work / "settings.json").write_text(json.dumps(settings, indent=2))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", WANDB_MODE="disabled", TOKENIZERS_PARALLELISM="false",
               PYTHONUNBUFFERED="1")
    if args.rehearse:
        env.update(OMP_NUM_THREADS="2", CUDA_VISIBLE_DEVICES="")
    deadline = time.monotonic() + args.budget
    results: dict[str, dict] = {}
    for name in names:
        cmd, gpu_limit, cpu_limit, needs = PARTS[name]
        for stale in (work / f"{name}.json",):
            stale.unlink(missing_ok=True)
        reason = None
        if "deepspeed" in needs:
            reason = deepspeed_missing()
        if reason is None and "host_memory" in needs and not args.force_offload:
            reason = host_memory_missing(settings)
        if reason is None and results.get("prepare", {}).get("status", "ok") != "ok":
            reason = "skipped: prepare failed"
        left = deadline - time.monotonic()
        if reason is None and left < 20:
            reason = f"skipped: the {args.budget:.0f} s budget is spent"
        if reason is not None:
            results[name] = {"status": "skipped", "reason": reason}
        else:
            limit = min((cpu_limit if args.rehearse else gpu_limit) * args.limit_scale, left)
            results[name] = run_part(name, cmd, work, limit, env)
        print(f"[gpu_check] {name}: {results[name]['status']} ({results[name].get('wall_s', 0)} s)", flush=True)
    report = {"device": device_info(), "mode": "rehearse" if args.rehearse else "gpu", "budget_s": args.budget,
              "settings": settings, "parts": results}
    Path(args.out).write_text(json.dumps(report, indent=2, default=float) + "\n")
    print(f"\n{report['device']}\n")
    print(table(results))
    print(f"\nwrote {args.out}")
    return 0 if all(r["status"] in ("ok", "skipped") for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
