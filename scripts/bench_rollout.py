"""Rollout time of the hf engine, colocated vLLM (and on GPU vLLM alone), weight-sync time and a GRPO step.

Device-agnostic: on a GPU, a random model of Qwen2.5-VL-3B's shape (tests/gpu/gpu_helpers.py) in
bf16 with 448x448 frames; on CPU (vLLM's CPU build), the `mid` preset in fp32 with 224x224 frames.
The same requests for every engine: P prompts of the synthetic data, `--frames`-frame videos,
G = 8 completions each, up to N new tokens. Each engine runs in its own process (one vLLM per process):

- hf: transformers `generate` on the policy (the CPU default engine);
- colocate: `rollout.engine=vllm` beside the loaded policy (gpu_memory_utilization from --gpu-mem);
  also times `sync_weights`: a full push (first sync / after sleep) and a trainable-only push;
- alone (GPU only): `vllm.LLM` with the GPU to itself (0.9 of its memory), fed the same requests;
- grpo-hf, grpo-vllm (`--grpo`): seconds of a GRPO step (2 prompts x G) with each engine, the
  second of two steps (the first includes warm-up and vLLM's first full push).

Completion tokens per second are measured after one warm-up call; ratios are taken side by side in
one run (docs/benchmarks.md method).

    python scripts/bench_rollout.py --prompts 8 --max-new-tokens 128 --out runs/bench_rollout.json
    python scripts/bench_rollout.py --frames 64 --prompts 2 --max-new-tokens 64 --grpo   # CPU table
    # or one engine per call, then the summary:
    python scripts/bench_rollout.py --mode colocate --out /tmp/rlvid-bench-rollout/result-colocate.json
    python scripts/bench_rollout.py --reuse --out runs/bench_rollout.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "gpu"))  # gpu_helpers: the 3B-shaped model and recipe
sys.path.insert(0, str(ROOT / "tests"))  # tiny_setup: the tiny fixtures live with the tests

MODES = ("hf", "colocate", "alone")
GRPO_MODES = ("grpo-hf", "grpo-vllm")


def on_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def synchronize() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn):
    synchronize()
    start = time.perf_counter()
    out = fn()
    synchronize()
    return out, time.perf_counter() - start


def device_name() -> str:
    import platform

    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def make_recipe(args, mode: str, overrides: dict | None = None):
    """The benchmark recipe for `mode`: the device's model, frames and dtype, the mode's engine."""
    from gpu_helpers import _deep_merge, make_shaped_model, vllm_recipe
    from tiny_setup import make_tiny_setup

    from rlvid.models.tiny import make_tiny_model

    root = Path(args.cache)
    tiny = make_tiny_setup(root / "tiny", n=max(40, 2 * args.prompts + 8))
    if on_gpu():
        model_dir, pixels, dtype = make_shaped_model(root / "qwen2_5_vl-3b-shape", "3b"), 448 * 448, "bf16"
    else:
        model_dir, pixels, dtype = root / "mid-qwen2_5_vl", 224 * 224, "fp32"
        if not (model_dir / "config.json").is_file():
            make_tiny_model(model_dir, preset="mid")
    video = {"fps": 2.0, "min_frames": args.frames, "max_frames": args.frames, "total_pixels": args.frames * pixels,
             "min_pixels_per_frame": pixels, "max_pixels_per_frame": pixels}
    engine = "vllm" if mode in ("colocate", "grpo-vllm") else "hf"
    base = {"model": {"dtype": dtype}, "data": {"video": video}, "rollout": {
        "num_generations": args.G, "max_new_tokens": args.max_new_tokens,
        "vllm": {"gpu_memory_utilization": args.gpu_mem}}}
    _deep_merge(base, overrides or {})
    return vllm_recipe(root / f"bench-{mode}-{args.frames}f", tiny, model_dir, engine=engine, overrides=base)


def setup(args):
    from rlvid.data.recipe_data import load_split, make_input_builder
    from rlvid.models.loading import load_processor
    from rlvid.rollout import SamplingParams

    recipe = make_recipe(args, args.mode)
    processor = load_processor(recipe.model.path)
    builder = make_input_builder(recipe, processor)
    samples = load_split(recipe, "train")[:args.prompts]
    for s in samples:
        builder.video(s)  # decode outside the timed region, as the trainer's cache does
    sampling = SamplingParams(temperature=1.0, max_new_tokens=args.max_new_tokens)
    return recipe, processor, builder, samples, sampling


def run_mode(args) -> dict:
    import torch

    from rlvid.models.loading import load_policy
    from rlvid.policy import Policy
    from rlvid.rollout import make_engine

    if args.mode in GRPO_MODES:
        return grpo_step(args)
    recipe, processor, builder, samples, sampling = setup(args)
    result: dict = {"mode": args.mode, "prompts": len(samples), "G": args.G, "max_new_tokens": args.max_new_tokens,
                    "frames": int(builder.video(samples[0]).frames.shape[0]), "device": device_name(),
                    "prompt_tokens": int(builder.prompts(samples[:1]).inputs["input_ids"].shape[1])}
    if args.mode == "alone":
        generate = alone_generator(recipe, builder, samples, sampling, args.G)
    else:
        model = load_policy(recipe.model, device="cuda" if torch.cuda.is_available() else "cpu").eval()
        engine = make_engine(recipe, Policy(model, builder, shared_prefix=recipe.trainer.shared_prefix))
        generate = lambda batch: engine.generate(batch, args.G, sampling)  # noqa: E731
    generate(samples[:2])  # warm-up (and, colocated, the first full weight push)
    out, seconds = timed(lambda: generate(samples))
    tokens = sum(len(ids) for ids in out.token_ids)
    result.update(completion_tokens=tokens, seconds=seconds, tokens_per_s=tokens / seconds)
    if args.mode == "colocate":
        result.update(sync_times(engine, model))
    return result


def sync_times(engine, model) -> dict:
    """Seconds of a full push (3 runs) and of a push of the trainable weights with the vision tower frozen."""
    full = []
    for _ in range(3):
        engine._synced = False  # as after a level-2 sleep: everything goes
        _, seconds = timed(lambda: engine.sync_weights(model))
        full.append(seconds)
    stats = engine.last_push
    for name, p in model.named_parameters():
        p.requires_grad_(not name.startswith("model.visual."))
    _, partial = timed(lambda: engine.sync_weights(model))
    return {"sync_full_seconds": full, "sync_full_gib": stats.bytes / 1024**3, "sync_full_tensors": stats.tensors,
            "sync_llm_only_seconds": partial, "sync_llm_only_gib": engine.last_push.bytes / 1024**3}


def grpo_step(args) -> dict:
    """Seconds of GRPO steps with the mode's engine (2 prompts x G per step), phases included."""
    from rlvid.app.compose import grpo_trainer

    recipe = make_recipe(args, args.mode, {"trainer": {
        "max_steps": 2, "global_prompts_per_step": 2, "micro_batch_size_per_device": args.G, "lr": 1e-5}})
    trainer = grpo_trainer(recipe, Path(args.cache) / f"grpo-{args.mode}")
    trainer.fit()
    rows = [json.loads(line) for line in open(Path(recipe.trainer.output_dir) / "metrics.jsonl")]
    steps = [r for r in rows if "time/step" in r]
    last = steps[-1]
    return {"mode": args.mode, "frames": args.frames, "G": args.G, "device": device_name(),
            "step_seconds": [r["time/step"] for r in steps], "gen_seconds": last.get("time/gen"),
            "sync_seconds": last.get("time/sync"), "phases": {k: v for k, v in last.items() if k.startswith("time/")}}


def alone_generator(recipe, builder, samples, sampling, G):
    """vLLM with the GPU to itself, fed the colocated engine's request payloads."""
    import torch
    import vllm

    from rlvid.rollout.vllm_colocate import llm_kwargs
    from rlvid.rollout.vllm_outputs import parse_request_outputs
    from rlvid.rollout.vllm_requests import prompt_request, sampling_kwargs

    kwargs = llm_kwargs(recipe, recipe.model.path, torch.bfloat16, seed=0)
    kwargs.update(gpu_memory_utilization=0.9, enable_sleep_mode=False, distributed_executor_backend=None)
    llm = vllm.LLM(**kwargs)
    tokenizer = builder.processor.tokenizer

    def generate(batch):
        requests = [prompt_request(builder, s) for s in batch]
        params = [vllm.SamplingParams(**sampling_kwargs(sampling, G, seed=i)) for i in range(len(batch))]
        return parse_request_outputs(llm.generate(requests, params, use_tqdm=False), G, tokenizer)

    return generate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mode", default="all", choices=("all", *MODES, *GRPO_MODES))
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--grpo", action="store_true", help="with --mode all: also time a GRPO step with each engine")
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--G", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--gpu-mem", type=float, default=0.45, help="colocated vLLM's share of GPU memory")
    ap.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "rlvid-bench-rollout"))
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    ap.add_argument("--reuse", action="store_true", help="with --mode all: keep engines' results already in --cache "
                    "(run the modes in separate calls, then summarise)")
    args = ap.parse_args()
    if args.mode != "all":
        result = run_mode(args)
        Path(args.out).write_text(json.dumps(result, indent=2)) if args.out else print(json.dumps(result, indent=2))
        return
    results = {}
    modes = [m for m in MODES if m != "alone" or on_gpu()] + (list(GRPO_MODES) if args.grpo else [])
    for mode in modes:
        out = Path(args.cache) / f"result-{mode}-{args.frames}f.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        if args.reuse and out.is_file():
            results[mode] = json.loads(out.read_text())
            continue
        cmd = [sys.executable, __file__, "--mode", mode, "--frames", str(args.frames),
               "--prompts", str(args.prompts), "--G", str(args.G),
               "--max-new-tokens", str(args.max_new_tokens), "--gpu-mem", str(args.gpu_mem), "--cache", args.cache,
               "--out", str(out)]
        subprocess.run(cmd, check=True)
        results[mode] = json.loads(out.read_text())
    summary = {"results": results,
               "colocate_over_hf": results["colocate"]["tokens_per_s"] / results["hf"]["tokens_per_s"]}
    if "alone" in results:
        summary["colocate_over_alone"] = results["colocate"]["tokens_per_s"] / results["alone"]["tokens_per_s"]
    print(f"{results['hf']['device']}, {args.frames} frames, {results['hf']['prompt_tokens']} prompt tokens, "
          f"{args.prompts} prompts x G={args.G}, <= {args.max_new_tokens} new tokens")
    print(f"{'engine':<10} {'tokens':>8} {'seconds':>8} {'tokens/s':>10}")
    for mode in (m for m in MODES if m in results):
        r = results[mode]
        print(f"{mode:<10} {r['completion_tokens']:>8} {r['seconds']:>8.2f} {r['tokens_per_s']:>10.1f}")
    print(f"colocated / hf = {summary['colocate_over_hf']:.2f}x" + (
        f", colocated / alone = {summary['colocate_over_alone']:.2f}" if "alone" in results else ""))
    c = results["colocate"]
    print(f"weight sync ({c['sync_full_gib']:.3f} GiB): full {min(c['sync_full_seconds']):.2f} s, "
          f"LLM only ({c['sync_llm_only_gib']:.3f} GiB) {c['sync_llm_only_seconds']:.2f} s")
    for mode in (m for m in GRPO_MODES if m in results):
        r = results[mode]
        print(f"{mode}: step {r['step_seconds'][-1]:.2f} s (gen {r['gen_seconds']:.2f} s, "
              f"sync {r['sync_seconds'] or 0:.2f} s); first step {r['step_seconds'][0]:.2f} s")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
