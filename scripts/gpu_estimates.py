"""FLOP and memory estimates for GRPO on real-size video LLMs, from the published shapes alone (no GPU needed).

scripts/gpu_check.py uses `step_flops` for its MFU figure; docs/gpu.md's memory guidance is this
script's table. Everything here is an estimate: dense matmul FLOPs (2 per parameter per token
forward, 6 forward + backward; attention's T^2 term, the gradient-checkpoint recompute and
elementwise work are left out, so the MFU is model FLOPs / peak, not hardware FLOPs) and
memory = weights + gradients + AdamW states + the largest activations (logits and checkpointed
layer inputs of one micro-batch), ignoring allocator fragmentation.

    python scripts/gpu_estimates.py            # memory guidance table (markdown) for docs/gpu.md
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

PEAK_BF16_DENSE = {"H100": 989e12, "H200": 989e12, "A100": 312e12}  # NVIDIA data sheets, SXM, dense


def peak_flops(device_name: str) -> float | None:
    """Dense bf16 peak of the card named `device_name` (None for an unknown card or a CPU)."""
    return next((v for k, v in PEAK_BF16_DENSE.items() if k in device_name), None)


@dataclass(frozen=True)
class StepShape:
    """What one GRPO step processes on one device."""

    prompts: int            # prompts per step
    group: int              # G completions per prompt
    prompt_tokens: int      # prompt length (visual + text tokens)
    completion_tokens: int  # fixed completion length
    vision_patches: int     # vision-tower patches per video (before the 2x2 merge)
    updates: int = 1        # mu: update passes over the rollouts
    old_pass: bool = False  # a no-grad log-prob pass before the updates (mu > 1)
    ref_pass: bool = False  # a reference-model log-prob pass (beta > 0)
    shared: bool = True     # vision reuse + shared prefix: a prompt's video and prefix once per group


def step_flops(llm_params: float, vision_params: float, s: StepShape) -> dict[str, float]:
    """Model FLOPs of one step by phase: `gen` (prefill + decode), `score` (old/ref passes), `update`."""
    rows = s.prompts * s.group
    prefix_rows = s.prompts if s.shared else rows  # how many times each prompt's prefix is computed
    vision = 2 * vision_params * s.vision_patches
    gen = prefix_rows * (2 * llm_params * s.prompt_tokens + vision) + rows * 2 * llm_params * s.completion_tokens
    fwd = prefix_rows * (2 * llm_params * s.prompt_tokens + vision) + rows * 2 * llm_params * s.completion_tokens
    score = fwd * (int(s.old_pass) + int(s.ref_pass))
    update = 3 * fwd * s.updates
    return {"gen": gen, "score": score, "update": update, "total": gen + score + update}


def memory_gib(params: float, trainable: float, s: StepShape, hidden: int, layers: int, vocab: int,
               micro_batch: int, ref_model: bool, optimizer_bytes: int = 4, intermediate: int = 0) -> dict[str, float]:
    """Peak GPU memory (GiB) of one GRPO step in bf16, one device, no sharding or offload.

    Weights bf16 (2 B/param, twice with a separate reference model); gradients bf16 and AdamW's two
    moments (`optimizer_bytes` each: 2 for bf16 states as rlvid keeps them in bf16 models, 4 for fp32)
    for trainable parameters; activations with gradient checkpointing: each layer's input of one
    micro-batch (bf16), one layer's recomputed activations (MLP intermediate x 3, attention in/out),
    plus the logits of the micro-batch's completion tokens in fp32 (the [T, V] log-softmax); the KV
    cache of generation (all G rows, bf16) is counted instead of activations when larger.
    """
    gib = 1024 ** 3
    seq = s.prompt_tokens + s.completion_tokens
    weights = 2 * params * (2 if ref_model else 1)
    grads_opt = trainable * (2 + 2 * optimizer_bytes)
    checkpoints = micro_batch * seq * hidden * 2 * layers
    layer = micro_batch * seq * (3 * intermediate + 6 * hidden) * 2
    logits = micro_batch * s.completion_tokens * vocab * 4 * 2  # logits + their log-softmax
    kv = s.prompts * s.group * seq * hidden * 2 * 2 * layers // 4  # GQA: ~1/4 of full K/V width (3B/7B: 1/8-1/7)
    activations = checkpoints + layer + logits
    return {"weights": weights / gib, "grads+adam": grads_opt / gib, "activations": activations / gib,
            "kv_cache": kv / gib, "total": (weights + grads_opt + max(activations, kv)) / gib}


MODELS = {  # published shapes (rlvid.models.real_shapes): params, hidden, layers, vocab
    "Qwen2.5-VL-3B": dict(params=3.755e9, vision=0.669e9, hidden=2048, layers=36, vocab=151936, intermediate=11008),
    "Qwen3-VL-4B": dict(params=4.438e9, vision=0.415e9, hidden=2560, layers=36, vocab=151936, intermediate=9728),
    "Qwen2.5-VL-7B": dict(params=8.292e9, vision=0.677e9, hidden=3584, layers=28, vocab=152064, intermediate=18944),
    "Qwen3-VL-8B": dict(params=8.767e9, vision=0.576e9, hidden=4096, layers=36, vocab=151936, intermediate=12288),
}


def visual_tokens(frames: int, tokens_per_pair: int = 32) -> int:
    """Visual tokens of a video of `frames` frames at rlvid's default budget shape (32 tokens per frame pair:
    25,088 pixels per frame, 2048x28x28 pixels over 64 frames)."""
    return frames // 2 * tokens_per_pair


def guidance_table(frames_list=(16, 64, 256), groups=(8, 16), completion: int = 256, micro_batch: int = 4) -> str:
    lines = ["| model | frames | G | full FT, beta 0 (GiB) | full FT + ref model, beta > 0 (GiB) | LoRA (GiB) |",
             "|---|---|---|---|---|---|"]
    for name, m in MODELS.items():
        for frames in frames_list:
            for g in groups:
                s = StepShape(prompts=2, group=g, prompt_tokens=visual_tokens(frames) + 100,
                              completion_tokens=completion, vision_patches=visual_tokens(frames) * 4)
                args = (s, m["hidden"], m["layers"], m["vocab"], micro_batch)
                kw = {"intermediate": m["intermediate"]}
                full = memory_gib(m["params"], m["params"], *args, ref_model=False, optimizer_bytes=2, **kw)
                ref = memory_gib(m["params"], m["params"], *args, ref_model=True, optimizer_bytes=2, **kw)
                lora = memory_gib(m["params"], 0.01 * m["params"], *args, ref_model=False, **kw)
                lines.append(f"| {name} | {frames} | {g} | {full['total']:.0f} | {ref['total']:.0f} | "
                             f"{lora['total']:.0f} |")
    return "\n".join(lines)


def zero3_offload_host_gib(params: float) -> float:
    """Host memory of full fine-tuning with ZeRO-3 parameter + optimizer offload (one process): fp32 master
    weights, two fp32 Adam moments and fp32 gradients (16 B/param) plus the bf16 parameters (2 B/param)."""
    return params * 18 / 1024 ** 3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--completion", type=int, default=256)
    args = ap.parse_args()
    print(guidance_table(completion=args.completion))
    for name, m in MODELS.items():
        print(f"{name}: ZeRO-3 offload host memory ~{zero3_offload_host_gib(m['params']):.0f} GiB")


if __name__ == "__main__":
    main()
