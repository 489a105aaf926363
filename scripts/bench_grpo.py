"""Per-phase time of GRPO steps on random tiny/mid models with 16-frame videos, and framework overhead.

overhead = step time / (generation + update_actor), where update_actor is the forward-backward
(+ optimizer step) over exactly the rollout tokens: everything else (rewards, advantages, encoding,
logging) is framework cost. Target: <= 1.15.

    python scripts/bench_grpo.py --preset tiny --steps 4
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from rlvid.app.compose import grpo_trainer
from rlvid.config import load_recipe
from rlvid.models.tiny import make_tiny_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the tiny fixtures live with the tests
from tiny_setup import make_tiny_setup, write_recipe  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="tiny", choices=["tiny", "mid"])
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench_grpo_"))
    setup = make_tiny_setup(root, n=40)
    setup["model"] = make_tiny_model(root / f"model-{args.preset}", preset=args.preset)
    video = {"fps": 2.0, "min_frames": 16, "max_frames": 16, "total_pixels": 16 * 12544,
             "min_pixels_per_frame": 12544, "max_pixels_per_frame": 12544}
    recipe = write_recipe(root / "r.yaml", setup, root / "run", {
        "data": {"video": video}, "rollout": {"num_generations": 8, "max_new_tokens": args.max_new_tokens},
        "trainer": {"max_steps": args.steps, "global_prompts_per_step": 2, "micro_batch_size_per_device": 8}})
    grpo_trainer(load_recipe(recipe), root).fit()
    rows = [json.loads(line) for line in open(root / "run" / "metrics.jsonl") if '"time/step"' in line][1:]
    phases = sorted(k for k in rows[0] if k.startswith("time/"))
    med = {k: statistics.median(r[k] for r in rows) for k in phases}
    print(f"preset={args.preset} steps measured={len(rows)} (first step dropped as warm-up)")
    for k in phases:
        print(f"  {k:<20} {med[k]:.3f} s")
    overhead = med["time/step"] / (med["time/gen"] + med["time/update_actor"])
    print(f"  overhead = step / (gen + update_actor) = {overhead:.3f}")


if __name__ == "__main__":
    main()
