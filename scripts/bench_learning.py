"""Benchmark: learning that needs the pixels (issue 17), over several seeds, with its controls.

Setting (tests/pixel_learning.py): tiny random Qwen3-VL (or Qwen2.5-VL), flash-grounding clips (12 s at 2 fps,
64x48; the whole screen turns one colour for one second at a random patch-aligned time), 240 train / 60 held out.
Per seed (data, model and trainer seed alike): the best constant interval (fitted on train, scored held out, and
the oracle chosen on the held-out clips), SFT, GRPO from the SFT model, a sign-flipped GRPO control from the same
SFT model, and the GRPO model on blank and frame-shuffled copies of the held-out clips. Held-out figures are the
eval hook's (greedy, standard IoU convention). `--control blank` trains and evaluates on blank videos instead:
the checks of tests/test_pixel_learning.py must then fail.

    OMP_NUM_THREADS=1 python scripts/bench_learning.py --seeds 0 1 2 --out runs/bench_learning.json

Defaults: the test's READING_SETTING (tests/pixel_learning.py): SFT on 12 s clips plus 2, 4 and 6 s clips, stopped at
the first check (train-carved clips) with mIoU >= 0.3, then 100 GRPO steps. `--short-clips` (empty) and
`--sft-stop-at 0` give the earlier 12-s-only, fixed-step SFT.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the tiny fixtures live with the tests
from pixel_learning import MIOU, READING_SETTING, run_pixel_learning, summary  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=None, help="work folder (default: a temporary one)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--arch", default="qwen3_vl", choices=["qwen3_vl", "qwen2_5_vl"])
    ap.add_argument("--model-seed", type=int, default=None, help="model and trainer seed (default: each data seed)")
    ap.add_argument("--sft-steps", type=int, default=READING_SETTING["sft_steps"])
    ap.add_argument("--grpo-steps", type=int, default=READING_SETTING["grpo_steps"])
    ap.add_argument("--grpo-lr", type=float, default=1.0e-3)
    ap.add_argument("--preset", default="tiny", help="tiny model sizes (rlvid/models/tiny.py PRESETS)")
    ap.add_argument("--sft-lr", type=float, default=1.0e-2)
    ap.add_argument("--sft-scheduler", default="constant", choices=["constant", "cosine", "linear"])
    ap.add_argument("--sft-warmup", type=float, default=0.0, help="SFT warm-up share of its steps")
    ap.add_argument("--short-clips", type=int, nargs="*", default=list(READING_SETTING["short_clips"]),
                    help="durations (s) of short SFT clips; none: 12 s clips only")
    ap.add_argument("--short-n", type=int, default=READING_SETTING["short_n"], help="short SFT clips per duration")
    ap.add_argument("--sft-stop-at", type=float, default=READING_SETTING["sft_stop_at"],
                    help="stop SFT at this check-split mIoU; <= 0: no check, run all SFT steps")
    ap.add_argument("--sft-check", type=int, default=40, help="train clips carved off as SFT's check split")
    ap.add_argument("--sft-check-every", type=int, default=20)
    ap.add_argument("--control", default=None, choices=["blank", "shuffled"], help="train on control videos")
    ap.add_argument("--no-flipped", action="store_true", help="skip the sign-flipped GRPO control")
    ap.add_argument("--out", default=None, help="JSON results file (default: ROOT/results.json)")
    args = ap.parse_args()
    torch.set_num_threads(1)  # tiny forwards: one thread is much faster on shared cores
    root = Path(args.root or tempfile.mkdtemp(prefix="bench_learning_"))
    start = time.perf_counter()
    runs = []
    for seed in args.seeds:
        r = run_pixel_learning(root / f"seed{seed}", seed=seed, arch=args.arch, sft_steps=args.sft_steps,
                               grpo_steps=args.grpo_steps, grpo_lr=args.grpo_lr, control=args.control,
                               flipped=not args.no_flipped, model_seed=args.model_seed, preset=args.preset,
                               sft_lr=args.sft_lr, short_clips=tuple(args.short_clips), short_n=args.short_n,
                               sft_overrides={"lr_scheduler": args.sft_scheduler, "warmup_ratio": args.sft_warmup},
                               sft_stop_at=args.sft_stop_at if args.sft_stop_at > 0 else None, sft_check=args.sft_check,
                               sft_check_every=args.sft_check_every)
        print(summary(r), flush=True)
        runs.append({k: v for k, v in r.items() if not k.endswith("_train_iou")})
    keys = ["constant", "constant_oracle", "blank", "shuffled"]
    table = {k: [r[k] for r in runs] for k in keys}
    for stage in ("sft", "grpo", "flipped"):
        if stage in runs[0]:
            table[stage] = [r[stage][MIOU] for r in runs]
    results = {"args": vars(args), "runs": runs, "mIoU": table,
               "mean": {k: statistics.fmean(v) for k, v in table.items()},
               "seconds": time.perf_counter() - start}
    Path(args.out or root / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({"mean": results["mean"], "seconds": results["seconds"]}, indent=2))


if __name__ == "__main__":
    main()
