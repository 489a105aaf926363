"""Video-token efficiency: GRPO step time with vision reuse, shared prefix and token dropping on/off.

One process builds one GRPO trainer per configuration on the same random model and data and runs
their steps interleaved (the order rotates every step), so every configuration sees the same
prompts under the same machine load; the figures are ratios to the all-off configuration.

    python scripts/bench_efficiency.py --preset tiny --frames 16 64 --steps 4
    python scripts/bench_efficiency.py --preset mid --frames 16 64 --steps 3
    python scripts/bench_efficiency.py --reward --steps 40       # held-out reward with / without dropping

Configurations: off (everything off: the plain path), vision (trainer.reuse_vision), prefix
(trainer.shared_prefix: hf prefill + log-prob passes), drop (data.video.token_drop patch mode: whole frame pairs),
exact (vision + prefix: no change to what the model sees), all (the three together); token / all_token: the same
with token_drop mode token (single visual tokens leave the LLM input; the vision tower sees every frame). Each step
runs gen -> reward -> adv -> encode -> old -> ref -> update with G = 8 rollouts of 2 prompts,
max_new_tokens 32, beta 0.04 (reference pass) and mu = 2 (old pass), fp32 on CPU. Phases are
the trainer's own time/<phase>[/<sub>] metrics.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from rlvid.app.compose import grpo_trainer
from rlvid.config import load_recipe
from rlvid.models.tiny import make_tiny_model
from rlvid.timing import PhaseTimer
from rlvid.trainers.grpo import GRPOTrainer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the tiny fixtures live with the tests
from tiny_setup import write_recipe  # noqa: E402

CONFIGS = {
    "off": {"trainer": {"reuse_vision": False, "shared_prefix": False}, "drop": "none"},
    "vision": {"trainer": {"reuse_vision": True, "shared_prefix": False}, "drop": "none"},
    "prefix": {"trainer": {"reuse_vision": False, "shared_prefix": True}, "drop": "none"},
    "drop": {"trainer": {"reuse_vision": False, "shared_prefix": False}, "drop": "patch"},
    "exact": {"trainer": {"reuse_vision": True, "shared_prefix": True}, "drop": "none"},
    "all": {"trainer": {"reuse_vision": True, "shared_prefix": True}, "drop": "patch"},
    "token": {"trainer": {"reuse_vision": False, "shared_prefix": False}, "drop": "token"},
    "all_token": {"trainer": {"reuse_vision": True, "shared_prefix": True}, "drop": "token"},
}
PHASES = ["step", "gen", "gen/decode", "gen/processor", "gen/vision", "gen/prefill", "gen/decode_tokens",
          "encode", "old", "old/vision", "old/prefill", "ref", "ref/vision", "ref/prefill",
          "update_actor", "update_actor/vision", "update_actor/prefill"]


CLOCK = {"cpu": False}


def video_settings(frames: int, drop: str, threshold: float, pixels: int = 12544) -> dict:
    """`frames` frames of `pixels` pixels each (12544: 112x140 for the 128x96 clips, 20 tokens per frame pair)."""
    return {"fps": 8.0, "min_frames": frames, "max_frames": frames, "total_pixels": frames * pixels,
            "min_pixels_per_frame": pixels, "max_pixels_per_frame": pixels,
            "token_drop": {"mode": drop, "threshold": threshold, "min_kept_frames": 4}}


def make_trainers(root: Path, model: Path, data: Path, frames: int, names: list[str], threshold: float,
                  extra: dict | None = None) -> dict[str, GRPOTrainer]:
    trainers = {}
    for name in names:
        cfg = CONFIGS[name]
        overrides = {
            "data": {"video": video_settings(frames, cfg["drop"], threshold)},
            "rollout": {"num_generations": 8, "max_new_tokens": 32},
            "trainer": {"global_prompts_per_step": 2, "micro_batch_size_per_device": 8, "max_steps": 100,
                        "beta": 0.04, "num_iterations": 2, **cfg["trainer"]},
        }
        setup = {"model": model, "data": data}
        path = write_recipe(root / f"{name}-{frames}.yaml", setup, root / f"run-{name}-{frames}",
                            _merge(overrides, extra or {}))
        trainer = grpo_trainer(load_recipe(path), root)
        if CLOCK["cpu"]:
            trainer.timer = PhaseTimer(clock=time.process_time)
        trainers[name] = trainer
    return trainers


def _merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def run_step(trainer: GRPOTrainer, step: int) -> dict[str, float]:
    """One step exactly as `Trainer.fit` runs it (timer reset, `step` phase around `train_step`)."""
    trainer.timer.reset()
    with trainer.timer("step"):
        metrics = trainer.train_step(trainer.local_batch(step), step)
    metrics.update(trainer.timer.metrics())
    return metrics


def bench_speed(args, root: Path, data: Path) -> None:
    model = make_tiny_model(root / f"model-{args.arch}-{args.preset}", arch=args.arch, preset=args.preset)
    for frames in args.frames:
        extra = {"model": {"freeze_vision_tower": True, "freeze_projector": True}} if args.freeze_vision else None
        trainers = make_trainers(root, model, data, frames, args.configs, args.threshold, extra)
        names = list(trainers)
        rows: dict[str, list[dict]] = {n: [] for n in names}
        for step in range(args.steps):
            order = names[step % len(names):] + names[:step % len(names)]
            for name in order:
                rows[name].append(run_step(trainers[name], step))
        report(args, frames, {n: r[1:] if len(r) > 1 else r for n, r in rows.items()})
        del trainers


def median(rows: list[dict], key: str) -> float:
    vals = [r.get(key, 0.0) for r in rows]
    return statistics.median(vals) if vals else 0.0


def report(args, frames: int, rows: dict[str, list[dict]]) -> None:
    vision = "vision tower frozen" if args.freeze_vision else "all trained"
    head = (f"{args.arch} {args.preset}, {frames} frames, G=8, {vision}, {args.clock} seconds, "
            f"median of {len(next(iter(rows.values())))} steps")
    print(f"\n### {head}\n")
    print("| phase | " + " | ".join(rows) + " |")
    print("|---|" + "---|" * len(rows))
    for phase in PHASES:
        key = f"time/{phase}"
        print(f"| {phase} | " + " | ".join(f"{median(r, key):.3f}" for r in rows.values()) + " |")
    off = median(next(iter(rows.values())), "time/step")
    ratios = " | ".join(f"**{off / median(r, 'time/step'):.2f}x**" for r in rows.values())
    print(f"| **speed-up vs {next(iter(rows))}** | {ratios} |")
    print("| visual tokens / prompt | " + " | ".join(f"{median(r, 'tokens/visual_per_prompt'):.0f}"
                                                   for r in rows.values()) + " |")
    print("| frames kept | " + " | ".join(f"{median(r, 'tokens/frames_kept_fraction'):.2f}"
                                         for r in rows.values()) + " |")
    print("| completion length | " + " | ".join(f"{median(r, 'rollout/completion_length'):.1f}"
                                               for r in rows.values()) + " |")
    if args.json:
        with open(args.json, "a") as f:
            f.write(json.dumps({"arch": args.arch, "preset": args.preset, "frames": frames, "rows": rows}) + "\n")


ARMS = {"none": ("none", False), "patch": ("patch", False), "none_stream": ("none", True),
        "patch_stream": ("patch", True)}


def bench_reward(args, root: Path, data: Path) -> None:
    """Held-out reward after SFT warm start + GRPO, per arm (token drop / streaming) and seed, same data."""
    from rlvid.app.train import run_train

    model = make_tiny_model(root / f"model-{args.arch}-tiny", arch=args.arch, preset="tiny")
    results: dict[str, list[tuple]] = {arm: [] for arm in args.arms}
    for seed in args.seeds:
        for arm in args.arms:
            drop, streaming = ARMS[arm]
            video = dict(video_settings(args.reward_frames, drop, args.threshold, args.reward_pixels),
                         streaming=streaming, stream_chunk_seconds=2.0)
            recipe = {
                "data": {"train": str(data / "train.jsonl"), "val": str(data / "val.jsonl"), "video": video},
                "rollout": {"num_generations": 8, "max_new_tokens": 24},
                "sft": {"steps": args.sft_steps, "lr": 3.0e-3, "global_samples_per_step": 8},
                "trainer": {"max_steps": args.steps, "lr": 1.0e-3, "global_prompts_per_step": 4, "seed": seed,
                            "micro_batch_size_per_device": 16, "loss_agg": "dapo", "eval_steps": 1000},
                "hooks": [{"name": "eval_grounding"}],
            }
            out = root / f"reward-{arm}-seed{seed}"
            path = write_recipe(root / f"reward-{arm}-seed{seed}.yaml", {"model": model, "data": data}, out, recipe)
            run_train(str(path))
            evals = [json.loads(line) for line in open(out / "metrics.jsonl") if '"eval/rewards/total"' in line]
            steps = [json.loads(line) for line in open(out / "metrics.jsonl") if '"tokens/visual_per_prompt"' in line]
            sft = [json.loads(line) for line in open(out / "sft" / "metrics.jsonl") if '"eval/rewards/total"' in line]
            row = (sft[-1]["eval/rewards/total"], evals[-1]["eval/rewards/total"],
                   statistics.mean(s["tokens/visual_per_prompt"] for s in steps),
                   statistics.mean(s["tokens/frames_kept_fraction"] for s in steps))
            print(f"{arm} seed {seed}: held-out reward after SFT {row[0]:.3f}, after GRPO {row[1]:.3f}", flush=True)
            results[arm].append(row)
    print(f"\n### held-out reward, {args.arch} tiny, {args.reward_frames} frames of {args.reward_pixels} px, "
          f"SFT {args.sft_steps} steps + GRPO {args.steps} steps, seeds {args.seeds}\n")
    print("| arm | after SFT (mean) | after GRPO (mean) | per seed | visual tokens / prompt | frames kept |")
    print("|---|---|---|---|---|---|")
    for arm, rows in results.items():
        per_seed = ", ".join(f"{r[1]:.3f}" for r in rows)
        print(f"| {arm} | {statistics.mean(r[0] for r in rows):.3f} | {statistics.mean(r[1] for r in rows):.3f} | "
              f"{per_seed} | {statistics.mean(r[2] for r in rows):.0f} | {statistics.mean(r[3] for r in rows):.2f} |")
    base = statistics.mean(r[1] for r in results[args.arms[0]])
    for arm in args.arms[1:]:
        mean = statistics.mean(r[1] for r in results[arm])
        relative = (mean - base) / max(abs(base), 1e-9)
        print(f"reward delta ({arm} - {args.arms[0]}): {mean - base:+.3f} ({relative:+.1%})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="tiny", choices=["tiny", "mid"])
    ap.add_argument("--arch", default="qwen2_5_vl", choices=["qwen2_5_vl", "qwen3_vl"])
    ap.add_argument("--frames", type=int, nargs="+", default=[16, 64])
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--threshold", type=float, default=0.02)
    ap.add_argument("--reward", action="store_true", help="held-out reward with / without token dropping")
    ap.add_argument("--reward-frames", type=int, default=16)
    ap.add_argument("--reward-pixels", type=int, default=3136, help="pixels per frame in the reward runs")
    ap.add_argument("--sft-steps", type=int, default=40)
    ap.add_argument("--seeds", type=int, nargs="+", default=[42])
    ap.add_argument("--arms", nargs="+", default=["none", "patch"], choices=list(ARMS))
    ap.add_argument("--n", type=int, default=120, help="synthetic clips (temporal grounding)")
    ap.add_argument("--json", default=None, help="append raw per-step metrics here")
    ap.add_argument("--root", default=None)
    ap.add_argument("--clock", default="cpu", choices=["cpu", "wall"],
                    help="cpu: CPU seconds of this process with torch on one thread (robust on a shared machine)")
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS),
                    help="the first is the baseline of the speed-up row (keep 'off' first)")
    ap.add_argument("--freeze-vision", action="store_true", help="model.freeze_vision_tower + freeze_projector")
    args = ap.parse_args()
    CLOCK["cpu"] = args.clock == "cpu"
    if CLOCK["cpu"]:
        torch.set_num_threads(1)
    root = Path(args.root or tempfile.mkdtemp(prefix="bench_eff_"))
    root.mkdir(parents=True, exist_ok=True)
    data = root / "data"
    if not (data / "train.jsonl").is_file():
        from rlvid.data.synthetic import make_synthetic_data

        # 16 fps so that 64 distinct frames can be sampled from every 6-10 s clip
        make_synthetic_data(data, n=args.n, seed=0, fps=16, tasks=("temporal_grounding",))
    (bench_reward if args.reward else bench_speed)(args, root, data)


if __name__ == "__main__":
    main()
