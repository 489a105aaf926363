"""Benchmark: does variance-aware data selection (or dynamic sampling) give GRPO more gain per rollout? (issue 17.3)

On the flash task (tests/pixel_learning.py), from a start model that reads the pixels (`--start`, e.g. the SFT
model of the flash setup): per data seed D a fresh pool of `--pool` clips; per trainer seed S four GRPO arms,
all from the start model, all `--steps` steps of 8 prompts x G 8:

- `full`: the whole pool;  `dynamic`: the whole pool with `selection.online: dynamic_sampling` (DAPO: groups
  whose G rewards are equal are dropped and refilled, up to `--max-tries` generation rounds a step);
- `variance`: the clips `rlvid select` keeps (k = `--k` sampled rollouts per pool clip with the start model,
  strategy `variance_aware`: the top `--fraction` by reward variance, never a zero-variance clip);
- `random`: as many random pool clips as `variance` kept.

Held-out figure: greedy mIoU on the 60 held-out clips of the start model's setup (never in a pool), by the eval
hook at step 0 and every `--eval-every` steps. Two comparisons: at equal GRPO steps (every arm's last eval), and at
equal rollout budget (steps x 64 completions): an arm is read at its last eval whose rollouts so far, the selection's
k x pool included for `variance` and the refills included for `dynamic`, fit the budget. Paired differences over
the (D, S) pairs: variance - random, variance - full, dynamic - full (mean, standard error, wins/ties/losses).

Every run is its own process (one thread; `--jobs` at once); a finished job leaves OUT/jobs/NAME/done.json and is
skipped when the command is run again. Writes OUT/results.json and OUT/results.md.

    PYTHONPATH=$PWD python scripts/bench_selection.py --start shared_models/pix_sft720 --jobs 14 --out runs/sel
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
import time
import traceback
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the tiny fixtures live with the tests
from selection_grid import ARMS, GROUP, PROMPTS_PER_STEP  # noqa: E402

SETTINGS = ("start", "pool", "k", "fraction", "steps", "lr", "eval_every", "max_tries", "device")
PAIRS = (("variance", "random"), ("variance", "full"), ("dynamic", "full"))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--start", required=True, help="start model folder (a GRPO start that reads the pixels)")
    ap.add_argument("--out", required=True, help="output folder (run again with the same folder to resume)")
    ap.add_argument("--data-seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5],
                    help="pool seeds (0 drew the start model's SFT clips)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="trainer seeds")
    ap.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    ap.add_argument("--pool", type=int, default=240, help="clips per pool")
    ap.add_argument("--k", type=int, default=8, help="rollouts per pool clip for selection")
    ap.add_argument("--fraction", type=float, default=0.25, help="variance_aware: share of the pool kept at most")
    ap.add_argument("--steps", type=int, default=60, help="GRPO steps per run (8 prompts x G 8 each)")
    ap.add_argument("--lr", type=float, default=1.0e-3)
    ap.add_argument("--eval-every", type=int, default=10, help="held-out eval every N steps")
    ap.add_argument("--max-tries", type=int, default=3, help="dynamic sampling: generation rounds per step")
    ap.add_argument("--jobs", type=int, default=1, help="runs at once (one process and one thread each)")
    ap.add_argument("--time-limit", type=float, default=0.0,
                    help="seconds; then stop running jobs, summarise finished ones (0 = none; rerun resumes)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="cpu hides the GPUs; fp32 either way")
    ap.add_argument("--keep-models", action="store_true", help="keep each run's final model (1 MB each)")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # internal: run one job in this process
    return ap.parse_args(argv)


# ---------------------------------------------------------------- jobs


def job_names(args: argparse.Namespace) -> dict[str, list[str]]:
    """Job name -> the jobs it needs, in a good launch order (the short ones and the ones others need first)."""
    jobs: dict[str, list[str]] = {}
    for d in args.data_seeds:
        jobs[f"pool-{d}"] = []
    for d in args.data_seeds:
        if {"variance", "random"} & set(args.arms):
            jobs[f"select-{d}"] = [f"pool-{d}"]
    for arm in ("dynamic", "full", "variance", "random"):  # dynamic is the longest: first
        if arm not in args.arms:
            continue
        for d in args.data_seeds:
            for s in args.seeds:
                jobs[f"grpo-{d}-{s}-{arm}"] = [f"pool-{d}"] + ([f"select-{d}"] if arm in ("variance", "random") else [])
    return jobs


def run_worker(out: Path, name: str) -> None:
    """Run one job in this process (one thread) and write its done.json last."""
    import selection_grid as grid
    import torch

    torch.set_num_threads(1)
    grid_file = json.loads((out / "grid.json").read_text())
    cfg = {**grid_file["settings"], "keep_models": grid_file.get("keep_models", False)}
    work = out / "jobs" / name
    work.mkdir(parents=True, exist_ok=True)
    kind, *parts = name.split("-")
    start = time.perf_counter()
    if kind == "pool":
        result = grid.run_pool(cfg, out, int(parts[0]))
    elif kind == "select":
        result = grid.run_select(cfg, out, int(parts[0]), work)
    else:
        result = grid.run_grpo(cfg, out, int(parts[0]), int(parts[1]), parts[2], work)
    result["seconds"] = time.perf_counter() - start
    (work / "done.json").write_text(json.dumps(result, indent=2) + "\n")


def schedule(args: argparse.Namespace, out: Path) -> list[str]:
    """Run the unfinished jobs, `args.jobs` at a time, each after the jobs it needs; returns the failed ones."""
    jobs = job_names(args)
    done = {n for n in jobs if (out / "jobs" / n / "done.json").is_file()}
    failed: list[str] = []
    running: dict[str, tuple[subprocess.Popen, float]] = {}
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false",
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", WANDB_MODE="disabled")
    if args.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    (out / "logs").mkdir(parents=True, exist_ok=True)
    print(f"{len(done)} of {len(jobs)} jobs already done", flush=True)
    started = time.perf_counter()
    while True:
        blocked = {n for n in jobs if any(d in failed for d in jobs[n])}
        waiting = [n for n in jobs if n not in done and n not in running and n not in failed and n not in blocked]
        for name in waiting:
            if len(running) >= args.jobs:
                break
            if all(d in done for d in jobs[name]):
                log = open(out / "logs" / f"{name}.log", "w")
                cmd = [sys.executable, str(Path(__file__).resolve()), "--start", args.start, "--out", str(out),
                       "--worker", name]
                running[name] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env),
                                 time.perf_counter())
                log.close()
        if not running:
            break
        time.sleep(0.5)
        if args.time_limit and time.perf_counter() - started > args.time_limit:
            for name, (proc, _) in running.items():
                proc.terminate()
                proc.wait()
                print(f"stopped {name} at the time limit ({args.time_limit:.0f} s)", flush=True)
            running.clear()
            break
        for name, (proc, t0) in list(running.items()):
            if proc.poll() is None:
                continue
            del running[name]
            ok = proc.returncode == 0 and (out / "jobs" / name / "done.json").is_file()
            (done.add if ok else failed.append)(name)
            print(f"[{time.perf_counter() - started:6.0f} s] {name}: {'done' if ok else 'FAILED'} in "
                  f"{time.perf_counter() - t0:.0f} s ({len(done)}/{len(jobs)} done)"
                  + ("" if ok else f", see {out / 'logs' / (name + '.log')}"), flush=True)
    return failed + sorted(n for n in jobs if n not in done and n not in failed)


def write_grid(args: argparse.Namespace, out: Path) -> None:
    """Record the settings; resuming with different ones is an error (seeds and arms may be added)."""
    settings = {k: getattr(args, k) for k in SETTINGS}
    settings["start"] = str(Path(args.start).resolve())
    path = out / "grid.json"
    if path.is_file():
        old = json.loads(path.read_text())["settings"]
        changed = {k: (old.get(k), v) for k, v in settings.items() if old.get(k) != v and k != "start"}
        if changed:
            raise SystemExit(f"bench_selection: {path} was written with other settings {changed}; use another --out")
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"settings": settings, "keep_models": args.keep_models}, indent=2) + "\n")


# ---------------------------------------------------------------- results


def read_point(curve: dict[str, Any], extra: int, budget: int, steps: int) -> dict[str, Any]:
    """The arm's held-out figures at equal steps (its last eval) and at the equal rollout budget."""
    final = curve["steps"].index(steps)
    fits = [i for i, r in enumerate(curve["rollouts"]) if r + extra <= budget]
    at = fits[-1] if fits else 0
    return {"start": curve["mIoU"][0], "steps_mIoU": curve["mIoU"][final],
            "steps_rollouts": curve["rollouts"][final] + extra,
            "budget_mIoU": curve["mIoU"][at], "budget_step": curve["steps"][at],
            "budget_rollouts": curve["rollouts"][at] + extra}


def paired(diffs: list[float]) -> dict[str, Any]:
    n = len(diffs)
    return {"n": n, "mean": statistics.fmean(diffs) if n else math.nan,
            "se": statistics.stdev(diffs) / math.sqrt(n) if n > 1 else math.nan,
            "wins": sum(d > 1e-9 for d in diffs), "ties": sum(abs(d) <= 1e-9 for d in diffs),
            "losses": sum(d < -1e-9 for d in diffs)}


def collect(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """Read every finished run; per arm and per (D, S) pair, the figures of both comparisons."""
    budget = args.steps * PROMPTS_PER_STEP * GROUP
    runs: dict[tuple[int, int], dict[str, dict]] = defaultdict(dict)
    selections = {}
    for d in args.data_seeds:
        sel = out / "jobs" / f"select-{d}" / "done.json"
        if sel.is_file():
            selections[d] = json.loads(sel.read_text())
    for d in args.data_seeds:
        for s in args.seeds:
            for arm in args.arms:
                done = out / "jobs" / f"grpo-{d}-{s}-{arm}" / "done.json"
                if not done.is_file():
                    continue
                curve = json.loads(done.read_text())
                extra = selections[d]["selection_rollouts"] if arm == "variance" else 0
                runs[(d, s)][arm] = {**read_point(curve, extra, budget, args.steps), "curve": curve}
    per_arm = {}
    for arm in args.arms:
        rows = [r[arm] for r in runs.values() if arm in r]
        if rows:
            per_arm[arm] = {
                "runs": len(rows), "start": statistics.fmean(r["start"] for r in rows),
                **{f"{cmp}_{k}": statistics.fmean(r[f"{cmp}_{k}"] for r in rows)
                   for cmp in ("steps", "budget") for k in ("mIoU", "rollouts")},
                "budget_step": statistics.fmean(r["budget_step"] for r in rows),
                **{f"{cmp}_gain_per_1k": statistics.fmean((r[f"{cmp}_mIoU"] - r["start"]) / r[f"{cmp}_rollouts"] * 1000
                                                          for r in rows) for cmp in ("steps", "budget")}}
    diffs = {}
    for a, b in PAIRS:
        pairs = [(k, r) for k, r in sorted(runs.items()) if a in r and b in r]
        for cmp in ("steps", "budget"):
            values = [(r[a][f"{cmp}_mIoU"] - r[a]["start"]) - (r[b][f"{cmp}_mIoU"] - r[b]["start"]) for _, r in pairs]
            diffs[f"{a}-{b}@{cmp}"] = {**paired(values), "pairs": [list(k) for k, _ in pairs], "values": values}
    curves, curve_steps = {}, []
    for arm in args.arms:
        members = [(d, r[arm]) for (d, _), r in runs.items() if arm in r]
        if not members:
            continue
        curve_steps = members[0][1]["curve"]["steps"]
        extra = {d: selections[d]["selection_rollouts"] if arm == "variance" else 0 for d, _ in members}
        curves[arm] = [(statistics.fmean(x["curve"]["mIoU"][x["curve"]["steps"].index(t)] for _, x in members),
                        statistics.fmean(x["curve"]["rollouts"][x["curve"]["steps"].index(t)] + extra[d]
                                         for d, x in members)) for t in curve_steps]
    return {"settings": json.loads((out / "grid.json").read_text())["settings"], "budget_rollouts": budget,
            "curve_steps": curve_steps, "curves": curves,
            "data_seeds": args.data_seeds, "seeds": args.seeds, "selections": selections, "per_arm": per_arm,
            "paired": diffs, "selection_analysis": analyse_selection(args, out, selections),
            "runs": {f"{d}-{s}": r for (d, s), r in sorted(runs.items())}}


NUMBER = r"(\d+(?:\.\d+)?)\s*(?:s|seconds)?\s*"
ANSWER = re.compile(rf"<answer>\s*{NUMBER}(?:to|-)\s*{NUMBER}</answer>")


def slot_of(sample: dict) -> int:
    return int(sample["intervals"][0][0])


def read_slot_hits(path: Path) -> dict[int, list[float]]:
    """Per time slot (the flash's start second), 1.0 for each held-out clip answered exactly right (greedy)."""
    hits: dict[int, list[float]] = defaultdict(list)
    for line in open(path):
        row = json.loads(line)
        m = ANSWER.search(row["completion"] or "")
        start, end = row["intervals"][0]
        right = bool(m) and abs(float(m.group(1)) - start) < 0.26 and abs(float(m.group(2)) - end) < 0.26
        hits[int(start)].append(float(right))
    return hits


def analyse_selection(args: argparse.Namespace, out: Path, selections: dict[int, dict]) -> dict[str, Any]:
    """What the selected clips look like, per time slot: pool share, start-model reward and variance, kept share;
    next to the start model's held-out reading of that slot and each arm's after training."""
    per_slot: dict[int, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for sel in selections.values():
        kept = {json.loads(line)["id"] for line in open(sel["selected"])}
        for line in open(sel["stats"]):
            st = json.loads(line)
            slot = slot_of(st["sample"])
            per_slot[slot]["mean"].append(st["mean"])
            per_slot[slot]["variance"].append(st["variance"])
            per_slot[slot]["kept"].append(float(st["id"] in kept))
    reading: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for d in args.data_seeds:
        for s in args.seeds:
            for arm in args.arms:
                folder = out / "jobs" / f"grpo-{d}-{s}-{arm}" / "run" / "samples"
                for step, key in ((0, "start"), (args.steps, arm)):
                    f = folder / f"step-{step:06d}.jsonl"
                    if f.is_file() and (key != "start" or not reading["start"]):
                        for slot, h in read_slot_hits(f).items():
                            reading[key][slot] += h
    table = {}
    for slot in sorted(set(per_slot) | set(reading["start"])):
        p = per_slot.get(slot, {})
        table[slot] = {"pool_clips": len(p.get("mean", [])), "held_out_clips": len(reading["start"].get(slot, [])),
                       "start_reward": statistics.fmean(p["mean"]) if p.get("mean") else None,
                       "variance": statistics.fmean(p["variance"]) if p.get("variance") else None,
                       "zero_variance": (sum(v == 0 for v in p["variance"]) / len(p["variance"]))
                       if p.get("variance") else None,
                       "kept": statistics.fmean(p["kept"]) if p.get("kept") else None,
                       **{f"held_out_right_{k}": statistics.fmean(v[slot]) if v.get(slot) else None
                          for k, v in reading.items()}}
    return table


def fmt(x: Any, digits: int = 3) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def markdown(res: dict[str, Any]) -> str:
    """The tables for docs/benchmarks.md."""
    st = res["settings"]
    lines = [f"Budget: {res['budget_rollouts']} rollouts per run ({st['steps']} steps x {PROMPTS_PER_STEP} x "
             f"G {GROUP}); selection: k {st['k']} x pool {st['pool']} = {st['k'] * st['pool']} rollouts, "
             f"fraction {st['fraction']}; data seeds {res['data_seeds']}, trainer seeds {res['seeds']}.", "",
             "| arm | runs | held-out mIoU at start | at equal steps | gain per 1k rollouts | at equal budget "
             "(step) | gain per 1k rollouts | rollouts (equal steps / equal budget) |",
             "|---|---|---|---|---|---|---|---|"]
    for arm, a in res["per_arm"].items():
        lines.append(f"| {arm} | {a['runs']} | {fmt(a['start'])} | {fmt(a['steps_mIoU'])} | "
                     f"{fmt(a['steps_gain_per_1k'])} | {fmt(a['budget_mIoU'])} ({a['budget_step']:.0f}) | "
                     f"{fmt(a['budget_gain_per_1k'])} | {a['steps_rollouts']:.0f} / {a['budget_rollouts']:.0f} |")
    lines += ["", "| paired difference of held-out mIoU gain | comparison | pairs | mean | standard error | "
              "wins / ties / losses |", "|---|---|---|---|---|---|"]
    for key, p in res["paired"].items():
        name, cmp = key.split("@")
        lines.append(f"| {name} | {'equal steps' if cmp == 'steps' else 'equal rollouts'} | {p['n']} | "
                     f"{fmt(p['mean'])} | {fmt(p['se'])} | {p['wins']} / {p['ties']} / {p['losses']} |")
    lines += ["", "Mean held-out mIoU by GRPO step (mean rollouts spent so far, selection included):", "",
              "| arm | " + " | ".join(f"step {t}" for t in res["curve_steps"]) + " |",
              "|---" * (1 + len(res["curve_steps"])) + "|"]
    for arm, points in res["curves"].items():
        lines.append(f"| {arm} | " + " | ".join(f"{fmt(m)} ({r:.0f})" for m, r in points) + " |")
    arms = [k.removeprefix("held_out_right_") for k in next(iter(res["selection_analysis"].values()), {})
            if k.startswith("held_out_right_")]
    lines += ["", "| slot (s) | pool clips | start-model reward (k mean) | reward variance | zero-variance share | "
              "kept by selection | held-out clips | " + " | ".join(f"held-out right: {a}" for a in arms) + " |",
              "|---" * (7 + len(arms)) + "|"]
    for slot, r in res["selection_analysis"].items():
        lines.append(f"| {slot} | {r['pool_clips']} | {fmt(r['start_reward'])} | {fmt(r['variance'])} | "
                     f"{fmt(r['zero_variance'], 2)} | {fmt(r['kept'], 2)} | {r['held_out_clips']} | "
                     + " | ".join(fmt(r[f"held_out_right_{a}"], 2) for a in arms) + " |")
    table = res["selection_analysis"]
    read = [s for s, r in table.items() if (r.get("held_out_right_start") or 0) >= 0.5]
    kept = {s: r["pool_clips"] * r["kept"] for s, r in table.items() if r["kept"] is not None}
    pool = {s: r["pool_clips"] for s, r in table.items()}
    if sum(kept.values()) and sum(pool.values()):
        lines += ["", f"Slots the start model already answers right (greedy, held out): {sorted(read)}; they hold "
                  f"{sum(kept.get(s, 0) for s in read) / sum(kept.values()):.0%} of the selected clips and "
                  f"{sum(pool[s] for s in read) / sum(pool.values()):.0%} of the pools."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out).resolve()
    if args.worker:
        try:
            run_worker(out, args.worker)
        except Exception:
            traceback.print_exc()
            return 1
        return 0
    if not (Path(args.start) / "config.json").is_file():
        raise SystemExit(f"bench_selection: --start {args.start}: no config.json there (a model folder is needed)")
    write_grid(args, out)
    from selection_grid import make_held_out

    make_held_out(out / "held_out")  # before the jobs, which all read it
    t0 = time.perf_counter()
    failed = schedule(args, out)
    res = collect(args, out)
    res["seconds"] = time.perf_counter() - t0
    res["failed"] = failed
    (out / "results.json").write_text(json.dumps(res, indent=2) + "\n")
    (out / "results.md").write_text(markdown(res))
    print(markdown(res))
    print(f"wrote {out / 'results.json'}, {out / 'results.md'} in {res['seconds']:.0f} s"
          + (f"; FAILED or not run: {failed}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
