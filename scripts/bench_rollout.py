"""Rollout throughput of the hf engine, colocated vLLM and vLLM alone, and weight-sync time (GPU + vLLM).

The same requests for every engine: P prompts of the synthetic data, 16-frame 448x448 videos,
G = 8 completions each, up to N new tokens, on a random model of Qwen2.5-VL-3B's shape
(tests/gpu/gpu_helpers.py). Each engine runs in its own process (one vLLM per process):

- hf: transformers `generate` on the policy (the CPU default engine);
- colocate: `rollout.engine=vllm` beside the loaded policy (gpu_memory_utilization from --gpu-mem);
  also times `sync_weights`: a full push (first sync / after sleep) and a trainable-only push;
- alone: `vllm.LLM` with the GPU to itself (0.9 of its memory), fed the same request payloads.

Completion tokens per second are measured after one warm-up call; ratios are taken side by side in
one run (docs/benchmarks.md method).

    python scripts/bench_rollout.py --prompts 8 --max-new-tokens 128 --out runs/bench_rollout.json
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

MODES = ("hf", "colocate", "alone")


def timed(fn):
    import torch

    torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    torch.cuda.synchronize()
    return out, time.perf_counter() - start


def setup(args):
    from gpu_helpers import make_shaped_model, vllm_recipe

    from rlvid.data.recipe_data import load_split, make_input_builder
    from rlvid.models.loading import load_processor
    from rlvid.rollout import SamplingParams
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the tiny fixtures live with the tests
    from tiny_setup import make_tiny_setup

    root = Path(args.cache)
    tiny = make_tiny_setup(root / "tiny", n=max(40, 2 * args.prompts + 8))
    model_dir = make_shaped_model(root / "qwen2_5_vl-3b-shape", "3b")
    engine = "vllm" if args.mode == "colocate" else "hf"
    recipe = vllm_recipe(root / f"bench-{args.mode}", tiny, model_dir, engine=engine,
                         overrides={"rollout": {"vllm": {"gpu_memory_utilization": args.gpu_mem}}})
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

    recipe, processor, builder, samples, sampling = setup(args)
    result: dict = {"mode": args.mode, "prompts": len(samples), "G": args.G, "max_new_tokens": args.max_new_tokens,
                    "frames": int(builder.video(samples[0]).frames.shape[0]), "gpu": torch.cuda.get_device_name()}
    if args.mode == "alone":
        generate = alone_generator(recipe, builder, samples, sampling, args.G)
    else:
        model = load_policy(recipe.model, device="cuda").eval()
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
    ap.add_argument("--mode", default="all", choices=("all", *MODES))
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
    for mode in MODES:
        out = Path(args.cache) / f"result-{mode}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        if args.reuse and out.is_file():
            results[mode] = json.loads(out.read_text())
            continue
        cmd = [sys.executable, __file__, "--mode", mode, "--prompts", str(args.prompts), "--G", str(args.G),
               "--max-new-tokens", str(args.max_new_tokens), "--gpu-mem", str(args.gpu_mem), "--cache", args.cache,
               "--out", str(out)]
        subprocess.run(cmd, check=True)
        results[mode] = json.loads(out.read_text())
    summary = {
        "results": results,
        "colocate_over_hf": results["colocate"]["tokens_per_s"] / results["hf"]["tokens_per_s"],
        "colocate_over_alone": results["colocate"]["tokens_per_s"] / results["alone"]["tokens_per_s"],
    }
    print(f"{'engine':<10} {'tokens':>8} {'seconds':>8} {'tokens/s':>10}")
    for mode in MODES:
        r = results[mode]
        print(f"{mode:<10} {r['completion_tokens']:>8} {r['seconds']:>8.2f} {r['tokens_per_s']:>10.1f}")
    print(f"colocated / hf = {summary['colocate_over_hf']:.2f}x, "
          f"colocated / alone = {summary['colocate_over_alone']:.2f}")
    c = results["colocate"]
    print(f"weight sync (3B shape, {c['sync_full_gib']:.2f} GiB): full {min(c['sync_full_seconds']):.2f} s, "
          f"LLM only ({c['sync_llm_only_gib']:.2f} GiB) {c['sync_llm_only_seconds']:.2f} s")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
