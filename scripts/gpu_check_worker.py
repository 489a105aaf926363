"""One part of scripts/gpu_check.py, run in a process of its own (under `accelerate launch` for FSDP2 / ZeRO).

    python scripts/gpu_check_worker.py PART WORK_DIR     # reads WORK_DIR/settings.json, writes WORK_DIR/PART.json

Parts drive training through the recipe loader and `GRPOTrainer` (the steps exactly as
`Trainer.fit` runs them, without its final checkpoint and model saves, which would write tens of GB
at these sizes). Each part writes its figures as JSON; the parent prints the table.
"""

from __future__ import annotations

import faulthandler
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO / "tests"))  # tiny_setup: the recipe writer the tests use

from gpu_estimates import StepShape, peak_flops, step_flops  # noqa: E402

from rlvid.models import real_shapes  # noqa: E402

real_shapes.SHAPES.setdefault("rehearsal", real_shapes.REHEARSAL)  # --rehearse stands in with it


# Random weights rarely earn the task rewards, so every group would have zero advantages and no gradient; this
# reward differs between the G completions of a prompt (a function of their token ids), so updates are real.
VARIED_REWARD = """def varied(completions, completion_ids, **kwargs):
    return [(sum(ids) % 7) / 6.0 for ids in completion_ids]
"""


def model_dir(work: Path, role: str) -> Path:
    return work / f"model-{role}"


# ------------------------------------------------------------------ prepare


def prepare(s: dict, work: Path) -> dict:
    """Write the models the selected parts need (reused when already there) and the synthetic videos."""
    from rlvid.data.synthetic import make_synthetic_data
    from rlvid.models.real_shapes import fix_completion_length, write_real_shape_model

    out: dict = {}
    for role in s["model_roles"]:
        arch, preset = s["models"][role]
        folder = model_dir(work, role)
        marker = folder / "rlvid_tiny.json"
        start = time.perf_counter()
        if not (marker.is_file() and json.loads(marker.read_text()).get("preset") == preset
                and (folder / "model.safetensors.index.json").is_file()):
            write_real_shape_model(folder, arch=arch, preset=preset)
        fix_completion_length(folder, s["max_completion"])
        out[f"write_{role}_s"] = round(time.perf_counter() - start, 1)
        out[f"params_{role}"] = json.loads(marker.read_text())["parameters"]
    data = work / "data"
    if not (data / "train.jsonl").is_file():
        v = s["synthetic"]
        make_synthetic_data(data, n=v["n"], seed=0, fps=v["fps"], width=v["width"], height=v["height"],
                            duration=v["duration"], tasks=("temporal_grounding",))
    return out


# ------------------------------------------------------------------ building a trainer


def video_settings(s: dict) -> dict:
    frames, pixels = s["frames"], s["pixels_per_frame"]
    return {"fps": s["synthetic"]["fps"], "min_frames": frames, "max_frames": frames,
            "total_pixels": frames * pixels, "min_pixels_per_frame": pixels, "max_pixels_per_frame": pixels}


def make_trainer(s: dict, work: Path, name: str, role: str, trainer: dict, model: dict | None = None,
                 new_tokens: int | None = None, accelerator=None):
    """A GRPOTrainer from a recipe file (the recipe loader's validation included) for part `name`.

    `accelerator`: None = the trainer's own (what `rlvid train` does), or a function recipe -> Accelerator.
    """
    from tiny_setup import write_recipe

    from rlvid.app.compose import grpo_trainer
    from rlvid.config import load_recipe

    overrides = {
        "model": {"dtype": s["dtype"], "gradient_checkpointing": True, **(model or {})},
        "data": {"video": video_settings(s)},
        "rollout": {"num_generations": s["group"], "max_new_tokens": new_tokens or s["new_tokens"]},
        "trainer": {"global_prompts_per_step": s["prompts"], "micro_batch_size_per_device": s["micro_batch"],
                    "max_steps": 100, "lr": 1e-6, "save_total_limit": 1, **trainer},
    }
    (work / "varied_reward.py").write_text(VARIED_REWARD)
    overrides["rewards"] = {"functions": [{"name": "format", "weight": 0.25, "kwargs": {"think": "optional"}},
                                          {"name": "temporal_iou", "weight": 0.25},
                                          {"name": "./varied_reward.py:varied", "weight": 1.0}]}
    setup = {"model": model_dir(work, role), "data": work / "data"}
    path = write_recipe(work / f"{name}.yaml", setup, work / f"run-{name}", overrides)
    recipe = load_recipe(path)
    return grpo_trainer(recipe, work, accelerator=accelerator(recipe) if accelerator else None)


def run_step(trainer, step: int) -> dict[str, float]:
    """One step as `Trainer.fit` runs it (timer reset, the `step` phase around `train_step`)."""
    trainer.timer.reset()
    with trainer.timer("step"):
        metrics = trainer.train_step(trainer.local_batch(step), step)
    metrics.update(trainer.timer.metrics())
    return metrics


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def memory() -> dict[str, float]:
    """Peak GPU memory since the last reset (GiB); on CPU, this process's peak RSS."""
    if torch.cuda.is_available():
        return {"peak_alloc_gib": torch.cuda.max_memory_allocated() / 1024**3,
                "peak_reserved_gib": torch.cuda.max_memory_reserved() / 1024**3}
    import resource

    return {"peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2}


def reset_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def prompt_tokens(trainer) -> int:
    """Prompt length (visual + text tokens) of the first training prompt."""
    inputs = trainer.builder.prompts(trainer.local_batch(0)[:1]).inputs
    return int(inputs["input_ids"].shape[1])


def step_figures(s: dict, trainer, rows: list[dict], llm_params: float, vision_params: float) -> dict:
    """Median phase times over measured steps, tokens/s and an MFU estimate (gpu_estimates.step_flops)."""
    med = {k: statistics.median(r.get(k, 0.0) for r in rows) for k in rows[0] if k.startswith("time/")}
    n_rows = s["prompts"] * s["group"]
    completion = statistics.median(r.get("rollout/completion_length", 0.0) for r in rows)
    prompt = prompt_tokens(trainer)
    cfg = trainer.recipe.trainer
    merge = 4  # 2x2 spatial merge: patches per visual token
    visual = statistics.median(r.get("tokens/visual_per_prompt", 0.0) for r in rows)
    shape = StepShape(prompts=s["prompts"], group=s["group"], prompt_tokens=prompt,
                      completion_tokens=int(completion), vision_patches=int(visual * merge),
                      updates=cfg.num_iterations, old_pass=cfg.num_iterations > 1, ref_pass=cfg.beta > 0,
                      shared=cfg.reuse_vision and cfg.shared_prefix)
    flops = step_flops(llm_params, vision_params, shape)
    out = {"phases_s": {k.removeprefix("time/"): round(v, 3) for k, v in med.items()},
           "step_s": round(med.get("time/step", 0.0), 3), "prompt_tokens": prompt,
           "completion_tokens": completion, "visual_tokens_per_prompt": visual,
           "vision_reused": statistics.median(r.get("vision/reused", 0.0) for r in rows),
           "generated_tokens_per_s": round(n_rows * completion / max(med.get("time/gen", 1e-9), 1e-9), 1),
           "training_tokens_per_s": round(cfg.num_iterations * n_rows * (prompt + completion)
                                          / max(med.get("time/update_actor", 1e-9), 1e-9), 1),
           "model_flop_per_step": float(f"{flops['total']:.4g}")}
    peak = peak_flops(torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu")
    if peak:
        out["mfu_step"] = round(flops["total"] / (med["time/step"] * peak), 4)
        out["mfu_update"] = round(flops["update"] / (med["time/update_actor"] * peak), 4)
    return out


def params_of(s: dict, work: Path, role: str) -> tuple[float, float]:
    """(LLM parameters incl. lm_head, vision parameters) of a model folder, from its safetensors index."""
    index = json.loads((model_dir(work, role) / "model.safetensors.index.json").read_text())
    from safetensors import safe_open

    vision = llm = 0
    for fname in sorted(set(index["weight_map"].values())):
        with safe_open(str(model_dir(work, role) / fname), "pt") as f:
            for key in f.keys():
                n = f.get_slice(key).get_shape()
                count = 1
                for d in n:
                    count *= d
                if ".visual." in f".{key}":
                    vision += count
                else:
                    llm += count
    return float(llm), float(vision)


def run_steps(s: dict, trainer, steps: int, warmup: int) -> list[dict]:
    rows = []
    for step in range(warmup + steps):
        if step == warmup:
            reset_memory()
        synchronize()
        rows.append(run_step(trainer, step))
        synchronize()
        # One line per finished step: a part killed at its limit still shows how far it got and where time went.
        phases = ", ".join(f"{k[5:]}={v:.2f}s" for k, v in rows[-1].items()
                           if k.startswith("time/") and k.count("/") == 1)
        print(f"[gpu_check_worker] {'warm-up' if step < warmup else 'measured'} step {step}: {phases}", flush=True)
    return rows[warmup:]


# ------------------------------------------------------------------ parts


def grpo(s: dict, work: Path, name: str, efficient: bool) -> dict:
    """GRPO on the 3B shape: G rollouts per prompt, bf16, gradient checkpointing, beta > 0 and mu = 2
    (the setting of scripts/bench_efficiency.py), the efficiency options all on or all off."""
    trainer = make_trainer(s, work, name, "3b", {"beta": 0.04, "num_iterations": 2, "reuse_vision": efficient,
                                                 "shared_prefix": efficient})
    rows = run_steps(s, trainer, s["steps"], s["warmup"])
    llm, vision = params_of(s, work, "3b")
    return {**step_figures(s, trainer, rows, llm, vision), **memory(), "efficiency": "on" if efficient else "off"}


def state_tensors(trainer) -> list[torch.Tensor]:
    """This process's parameter shards, then its optimizer state tensors, in a fixed order (live, not copies)."""
    local = [(p.to_local() if hasattr(p, "to_local") else p).detach() for p in trainer.model.parameters()]
    state = trainer.optimizer.state_dict()["state"]
    for key in sorted(state):
        for name in sorted(state[key]):
            t = state[key][name]
            if isinstance(t, torch.Tensor):
                local.append((t.to_local() if hasattr(t, "to_local") else t).detach())
    return local


def snapshot(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """Host copies (the 3B shape's parameters + AdamW states are ~22 GB: fits the GPU machine's 128 GB)."""
    return [t.to("cpu", copy=True) for t in tensors]


def max_abs_diff(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    """Largest elementwise difference, one tensor pair at a time on the host."""
    return max(float((x.cpu().float() - y.cpu().float()).abs().max()) if x.numel() else 0.0
               for x, y in zip(a, b, strict=True))


def bitwise_equal(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return len(a) == len(b) and all(torch.equal(x.cpu(), y.cpu()) for x, y in zip(a, b, strict=True))


def gather_weights(trainer) -> dict:
    """The weight-gather path of weight sync (FSDP2 full_tensor / ZeRO-3 GatheredParameters): every weight once."""
    from rlvid.rollout.weight_sync import iter_push_weights

    synchronize()
    start = time.perf_counter()
    count, nbytes = 0, 0
    for _, tensor in iter_push_weights(trainer.accelerator.unwrap_model(trainer.model)):
        count += 1
        nbytes += tensor.numel() * tensor.element_size()
    synchronize()
    return {"gathered_tensors": count, "gathered_gib": round(nbytes / 1024**3, 3),
            "gather_s": round(time.perf_counter() - start, 3)}


def fsdp2(s: dict, work: Path) -> dict:
    """FSDP2 through accelerate (one process): DTensor parameters, the weight-gather path, a GRPO step, and
    checkpoint save + resume equality (the loaded state is bitwise the saved one; the resumed step repeats)."""
    from torch.distributed.tensor import DTensor

    from rlvid.trainers.checkpoint import load_checkpoint, save_checkpoint

    trainer = make_trainer(s, work, "fsdp2", "3b", {"beta": 0.0}, new_tokens=s["dist_new_tokens"])
    acc = trainer.accelerator
    params = list(trainer.model.parameters())
    out = {"distributed_type": str(acc.distributed_type), "dtensor_params": sum(isinstance(p, DTensor) for p in params),
           "params": len(params)}
    launched = os.environ.get("ACCELERATE_USE_FSDP") == "true" and os.environ.get("FSDP_VERSION") == "2"
    if not launched:
        raise RuntimeError("FSDP2 part: not started by accelerate launch with recipes/accelerate/fsdp2.yaml")
    if not out["dtensor_params"]:
        if not s["rehearse"]:
            raise RuntimeError(f"FSDP2 part: no DTensor parameters (distributed_type {acc.distributed_type})")
        out["not_exercised"] = ("DTensor sharding: accelerate turns FSDP on only for GPU process groups, so on CPU "
                                "the model stays unsharded; launch, step, gather, save and resume ran unsharded")
    reset_memory()
    first = run_step(trainer, 0)
    out.update(gather_weights(trainer))
    start = time.perf_counter()
    ckpt = save_checkpoint(acc, trainer.output_dir, 1, {"epoch": 0, "stage": "grpo"})
    out["save_s"] = round(time.perf_counter() - start, 2)
    saved = snapshot(state_tensors(trainer))
    n_params = len(list(trainer.model.parameters()))
    second = run_step(trainer, 1)
    after_a = snapshot(state_tensors(trainer)[:n_params])
    start = time.perf_counter()
    load_checkpoint(acc, ckpt)
    out["load_s"] = round(time.perf_counter() - start, 2)
    out["resume_state_equal"] = bitwise_equal(state_tensors(trainer), saved)
    run_step(trainer, 1)
    out["resume_step_max_abs_diff"] = max_abs_diff(after_a, state_tensors(trainer)[:n_params])
    out["step_param_change"] = max_abs_diff(saved[:n_params], after_a)
    out["step_s"] = round(second["time/step"], 3)
    out["first_step_s"] = round(first["time/step"], 3)
    out.update(memory())
    if not out["resume_state_equal"]:
        raise RuntimeError(f"FSDP2 resume: the loaded state differs from the saved one ({out})")
    return out


def zero(s: dict, work: Path, name: str, role: str, trainer_cfg: dict, model_cfg: dict | None = None) -> dict:
    """A GRPO step through accelerate + DeepSpeed (one process): optimizer updates per step, weight gather."""
    trainer = make_trainer(s, work, name, role, {"beta": 0.0, **trainer_cfg}, model=model_cfg,
                           new_tokens=s["dist_new_tokens"])  # the trainer's own Accelerator, as `rlvid train`
    acc = trainer.accelerator
    engine = trainer.model
    ds_config = acc.state.deepspeed_plugin.deepspeed_config if acc.state.deepspeed_plugin else {}
    out = {"distributed_type": str(acc.distributed_type),
           "deepspeed_batch": {k: ds_config.get(k) for k in ("train_micro_batch_size_per_gpu",
                                                             "gradient_accumulation_steps", "train_batch_size")},
           "zero_stage": engine.zero_optimization_stage() if hasattr(engine, "zero_optimization_stage") else None,
           "partitioned_params": sum(hasattr(p, "ds_id") for p in engine.parameters())}
    if "DEEPSPEED" not in out["distributed_type"]:
        raise RuntimeError(f"{name}: accelerate is not using DeepSpeed ({out['distributed_type']})")
    rows, updates = [], []
    for step in range(s["dist_steps"]):
        if step == 1:
            reset_memory()
        before = getattr(engine, "global_steps", None)
        synchronize()
        rows.append(run_step(trainer, step))
        updates.append(None if before is None else engine.global_steps - before)
    out["optimizer_updates_per_step"] = updates  # the recipe asks for num_iterations (1) per step
    wanted = trainer.recipe.trainer.num_iterations
    if any(u is not None and u != wanted for u in updates):
        out["problems"] = [f"DeepSpeed took {updates} optimizer updates per GRPO step, the recipe asks for {wanted} "
                           "(Trainer.accumulate_and_step must end accumulation on the last micro-batch only)"]
    out["micro_batches_per_step"] = -(-s["prompts"] * s["group"] // s["micro_batch"])
    out["step_s"] = round(rows[-1]["time/step"], 3)
    out["phases_s"] = {k.removeprefix("time/"): round(v, 3) for k, v in rows[-1].items() if k.startswith("time/")}
    if out["zero_stage"] == 3:
        out.update(gather_weights(trainer))
    out.update(memory())
    return out


def lora_7b(s: dict, work: Path) -> dict:
    """The 7B shape with LoRA (beta > 0: the reference is the adapter-free base): does a step fit, peak memory."""
    trainer = make_trainer(s, work, "lora_7b", "7b", {"beta": 0.04}, model={"lora": {"enabled": True}},
                           new_tokens=s["dist_new_tokens"])
    rows = run_steps(s, trainer, 1, 1)
    llm, vision = params_of(s, work, "7b")
    return {**step_figures(s, trainer, rows, llm, vision), **memory()}


PARTS = {
    "prepare": prepare,
    "grpo_on": lambda s, w: grpo(s, w, "grpo_on", True),
    "grpo_off": lambda s, w: grpo(s, w, "grpo_off", False),
    "fsdp2": fsdp2,
    "zero2": lambda s, w: zero(s, w, "zero2", "3b", {}),
    "zero3": lambda s, w: zero(s, w, "zero3", "3b", {}),
    "lora_7b": lora_7b,
    "zero3_offload_7b": lambda s, w: zero(s, w, "zero3_offload_7b", "7b", {}),
}


def main() -> int:
    part, work = sys.argv[1], Path(sys.argv[2])
    dump_after = float(os.environ.get("RLVID_GPU_CHECK_DUMP_S", "0"))
    if dump_after > 0:  # a part about to hit its limit leaves every thread's stack in its log (hangs)
        faulthandler.dump_traceback_later(dump_after, exit=False)
    settings = json.loads((work / "settings.json").read_text())
    if not torch.cuda.is_available():
        torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    start = time.perf_counter()
    figures = PARTS[part](settings, work)
    figures["part_s"] = round(time.perf_counter() - start, 1)
    if int(os.environ.get("RANK", "0")) == 0:
        (work / f"{part}.json").write_text(json.dumps(figures, indent=2, default=float) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
