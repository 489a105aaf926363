"""Benchmark: score 10,000 completions with `format` + `temporal_iou` + `accuracy`.

Runs the rewards the way the trainer does (one `RewardSet` call on the whole batch, columns as
lists) on a realistic mix of tasks and answer forms, pinned to one core. Prints the best of
`--repeats` timings. Usage:

    python scripts/bench_rewards.py [--n 10000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import time


def _pin_one_core() -> str:
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"
    if hasattr(os, "sched_setaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"cpu {cpu}"
    return "unpinned"


THINK = (
    "<think>The person first walks into the kitchen, then opens the fridge and takes out a bottle. "
    "Looking at the frames around the middle of the video, the action that matches the query happens "
    "after the door opens and before the person turns around, so the segment should cover that.</think>"
)
INTERVAL_FORMS = [
    "{s} to {e}", "{s} - {e} seconds", "[{s}, {e}]", "from {s}s to {e}s",
    '{{"start_time": "{s}", "end_time": "{e}"}}', "The event happens between {s} and {e} seconds.",
]
LETTER_FORMS = ["{L}", "({L})", "{L}.", "{L}) {text}", "The answer is {L}."]


def make_batch(n: int, seed: int = 0) -> tuple[list[str], dict[str, list]]:
    """Completions and aligned columns: 50% grounding, 35% mcq, 10% numeric, 5% open QA."""
    rng = random.Random(seed)
    completions: list[str] = []
    cols: dict[str, list] = {k: [] for k in ("task", "answer", "options", "intervals", "duration")}
    for i in range(n):
        duration = round(rng.uniform(20, 200), 1)
        r = rng.random()
        broken = rng.random() < 0.1  # some outputs miss the format or the answer
        if r < 0.5:
            s = round(rng.uniform(0, duration / 2), 1)
            e = round(rng.uniform(s, duration), 1)
            gs = round(max(0.0, s + rng.uniform(-5, 5)), 1)
            ge = round(min(duration, max(gs + 1, e + rng.uniform(-5, 5))), 1)
            ans = rng.choice(INTERVAL_FORMS).format(s=s, e=e)
            row = dict(task="temporal_grounding", answer=None, options=None, intervals=[[gs, ge]])
        elif r < 0.85:
            options = ["a red car", "a blue bicycle", "a dog on a leash", "a man with an umbrella"]
            k = rng.randrange(4)
            L = "ABCD"[k]
            ans = rng.choice(LETTER_FORMS).format(L=L, text=options[k])
            row = dict(task="mcq", answer="ABCD"[rng.randrange(4)], options=options, intervals=None)
        elif r < 0.95:
            gt = rng.randrange(1, 20)
            ans = rng.choice(["{x}", "There are {x} people.", "{x}.0"]).format(x=gt + rng.choice([0, 0, 1]))
            row = dict(task="numeric", answer=str(gt), options=None, intervals=None)
        else:
            ans = rng.choice(["a man is cooking pasta", "cooking", "he cooks pasta in a kitchen"])
            row = dict(task="open_qa", answer="a man cooks pasta", options=None, intervals=None)
        text = f"{THINK}\n<answer>{ans}</answer>" if not broken else f"{THINK} I am not sure."
        completions.append(text + ("" if i % 7 else " "))
        row["duration"] = duration
        for k in cols:
            cols[k].append(row[k])
    return completions, cols


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    pinned = _pin_one_core()

    from rewards import accuracy_reward, compose_rewards, format_reward, temporal_iou_reward

    completions, cols = make_batch(args.n)
    rewards = compose_rewards(
        [
            {"name": "format", "weight": 0.5},
            {"name": "temporal_iou", "weight": 1.0},
            {"name": "accuracy", "weight": 1.0},
        ]
    )
    rewards(completions[:100], **{k: v[:100] for k, v in cols.items()})  # warm-up (lazy imports)
    times, parts = [], {"format": [], "temporal_iou": [], "accuracy": []}
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        out = rewards(completions, **cols)
        times.append(time.perf_counter() - t0)
        for name, fn in zip(parts, (format_reward, temporal_iou_reward, accuracy_reward), strict=True):
            t0 = time.perf_counter()
            fn(completions, **cols)
            parts[name].append(time.perf_counter() - t0)
    m = out.metrics()
    print(f"python {platform.python_version()} on {platform.machine()}, {pinned}, n={args.n}, repeats={args.repeats}")
    print(f"RewardSet(format+temporal_iou+accuracy): best {min(times):.3f} s, median {statistics.median(times):.3f} s")
    for name, ts in parts.items():
        print(f"  {name:<13} alone: best {min(ts) * 1e3:.1f} ms")
    print("  mean scores: " + ", ".join(f"{k}={v:.3f}" for k, v in sorted(m.items())))


if __name__ == "__main__":
    main()
