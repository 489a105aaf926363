"""Benchmark: M-DPO and visual-token dropping judged on a model that reads the pixels (issue 17 item 4).

From one start model that reads the flash clips (an SFT model, tests/pixel_learning.py; `--start`) and its clip
folder (`--data`, holding train.jsonl / val.jsonl / videos), per trainer seed:

- M-DPO: pairs built from the start model's own samples on the train clips (`--pairs-n` per clip, temperature 1),
  ranked by temporal IoU (gap >= `--min-gap`); M-DPO on them, and the control on the same pairs with chosen and
  rejected swapped; held-out mIoU of each vs the start model;
- token dropping: GRPO from the start model with each `data.video.token_drop.mode` (default threshold 0.02,
  min_kept_frames 4) everywhere (rollouts, log-probs, update), each final model scored held out with its own mode
  and with none; plus the start model scored with each mode (inference only) and what each mode keeps of a clip;
  with `--adapt-sft-steps N`, also SFT with the mode for N steps before that GRPO (a model that learned the input).

Held-out figures: greedy completions on the 60 val clips, mean temporal IoU (the standard mIoU) and total reward
(format 0.5 + IoU 0.5). Every job is a separate process with one thread (`--jobs` at a time); a finished job's
result file is kept, so a rerun with the same --out continues where it stopped. Everything lands under --out.

    PYTHONPATH=$PWD python scripts/bench_mdpo_tokendrop.py --start shared_models/pix_sft720 \
        --data shared_models/pix_setup_d0m2/data --out runs/mdpo_tokendrop --jobs 8 --seeds 0 1 --device cpu
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the tiny fixtures live with the tests

MODES = ("none", "token", "frame", "patch")
WITHIN = 0.02  # docs/efficiency.md's question: held-out reward within 2% of no dropping


def plan(args) -> dict[str, list[str]]:
    """Job name -> the jobs it needs first; started in this order (the longest, optional adapt_* jobs last, so a run
    cut short by a time limit loses those first)."""
    jobs: dict[str, list[str]] = {"infer": []}
    for seed in args.seeds:
        if not args.skip_mdpo:
            jobs[f"pairs-s{seed}"] = []
            jobs[f"mdpo-s{seed}"] = [f"pairs-s{seed}"]
            jobs[f"mdpo_swapped-s{seed}"] = [f"pairs-s{seed}"]
        for mode in args.modes:
            jobs[f"grpo_{mode}-s{seed}"] = []
    for seed in args.seeds if args.adapt_sft_steps else ():
        for mode in args.modes:
            jobs[f"adapt_{mode}-s{seed}"] = []
    return jobs


# ---------------------------------------------------------------- one job (runs in its own process)


def run_job(name: str, args) -> dict:
    import pixel_dpo as px
    import torch

    torch.set_num_threads(1)
    out, start, data = Path(args.out).resolve(), Path(args.start).resolve(), Path(args.data).resolve()
    work = out / "work" / name
    kind, _, seed_part = name.partition("-s")
    seed = int(seed_part) if seed_part else 0
    t0 = time.perf_counter()
    result: dict = {"job": name, "seed": seed}
    if kind == "infer":
        recipe = px.flash_recipe(work / "eval.yaml", start, data, work / "eval", 0)
        result["scores"] = {m: px.heldout_scores(recipe, start, m) for m in args.modes}
        result["drops"] = {m: px.drop_report(recipe, start, m, n=60) for m in args.modes}
    elif kind == "pairs":
        recipe = px.flash_recipe(work / "pairs.yaml", start, data, work / "run", seed, mdpo_settings(args))
        pairs = px.build_pairs(recipe, start, work / "pairs", args.pairs_n)
        px.swap_pairs(pairs, work / "pairs_swapped")
        result["summary"] = json.loads((pairs / "summary.json").read_text())
    elif kind in ("mdpo", "mdpo_swapped"):
        folder = out / "work" / f"pairs-s{seed}" / ("pairs" if kind == "mdpo" else "pairs_swapped")
        recipe = px.flash_recipe(work / "mdpo.yaml", start, data, work / "run", seed,
                                 {**mdpo_settings(args), "mdpo": {**mdpo_settings(args)["mdpo"], "pairs": str(folder)}})
        model = px.train_once(recipe)
        result["scores"] = {"none": px.heldout_scores(recipe, model, "none")}
        result["train_log"] = last_rows(work / "run" / "metrics.jsonl", ("loss/dpo", "rewards/accuracy", "loss"))
    elif kind.startswith("grpo_"):
        mode = kind.removeprefix("grpo_")
        recipe = px.flash_recipe(work / "grpo.yaml", start, data, work / "run", seed, grpo_settings(args, mode))
        model = px.train_once(recipe)
        result["scores"] = {m: px.heldout_scores(recipe, model, m) for m in dict.fromkeys((mode, "none"))}
        result["train_log"] = last_rows(work / "run" / "metrics.jsonl", ("rewards/temporal_iou", "time/step"))
    elif kind.startswith("adapt_"):  # SFT with the mode first (the model learns the dropped input), then GRPO
        mode = kind.removeprefix("adapt_")
        sft = px.flash_recipe(work / "sft.yaml", start, data, work / "sft", seed, {
            "data": {"video": {"token_drop": {"mode": mode}}},
            "trainer": {"algorithm": "sft", "micro_batch_size_per_device": 16},
            "sft": {"steps": args.adapt_sft_steps, "lr": args.adapt_sft_lr, "global_samples_per_step": 16}})
        sft_model = px.train_once(sft)
        recipe = px.flash_recipe(work / "grpo.yaml", sft_model, data, work / "run", seed, grpo_settings(args, mode))
        model = px.train_once(recipe)
        result["sft_scores"] = {m: px.heldout_scores(sft, sft_model, m) for m in dict.fromkeys((mode, "none"))}
        result["scores"] = {m: px.heldout_scores(recipe, model, m) for m in dict.fromkeys((mode, "none"))}
        result["train_log"] = last_rows(work / "run" / "metrics.jsonl", ("rewards/temporal_iou", "time/step"))
    else:
        raise ValueError(f"unknown job {name!r}")
    result["seconds"] = time.perf_counter() - t0
    return result


def grpo_settings(args, mode: str) -> dict:
    """GRPO as the learning test runs it (8 prompts x G 8, dapo, temperature 1), with `mode` everywhere."""
    return {"data": {"video": {"token_drop": {"mode": mode}}},
            "trainer": {"max_steps": args.grpo_steps, "lr": args.grpo_lr, "global_prompts_per_step": 8,
                        "micro_batch_size_per_device": 32, "loss_agg": "dapo"},
            "rollout": {"num_generations": 8, "temperature": 1.0}}


def mdpo_settings(args) -> dict:
    import pixel_dpo as px

    return {"trainer": {"algorithm": "mdpo", "max_steps": args.mdpo_steps, "lr": args.mdpo_lr,
                        "micro_batch_size_per_device": 32},
            "rollout": {"temperature": 1.0},
            "mdpo": {"beta": args.mdpo_beta, "sft_gamma": args.mdpo_sft_gamma, "num_samples": args.pairs_n,
                     "min_gap": args.min_gap, "pairs_per_prompt": 4, "pairs_per_step": 16,
                     "generation_batch_size": 16, "reference": "precomputed", "metric": px.IOU_METRIC}}


def last_rows(path: Path, keys: tuple[str, ...]) -> list[dict]:
    """The training curve of `keys` (every logged step), for reading a run without its folder."""
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [{k: r[k] for k in ("step", *keys) if k in r} for r in rows if any(k in r for k in keys)]


# ---------------------------------------------------------------- the scheduler


def run_all(args, argv: list[str]) -> None:
    out = Path(args.out)
    (out / "results").mkdir(parents=True, exist_ok=True)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    jobs = plan(args)
    done = {j for j in jobs if (out / "results" / f"{j}.json").is_file()}
    failed: set[str] = set()
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    if args.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    start = time.perf_counter()
    signal.signal(signal.SIGTERM, _stop)  # `timeout`: end the jobs too, not only this process
    try:
        schedule(args, argv, out, jobs, done, failed, env, start)
    finally:
        print(tables(write_report(args, out, done, failed, time.perf_counter() - start)))
    if failed:
        sys.exit(f"failed jobs (see {out}/logs): {sorted(failed)}")


class Stopped(Exception):
    """SIGTERM reached the scheduler."""


def _stop(_signum, _frame) -> None:
    raise Stopped


def schedule(args, argv: list[str], out: Path, jobs: dict[str, list[str]], done: set[str], failed: set[str],
             env: dict[str, str], start: float) -> None:
    """Run the jobs, at most --jobs at a time, each once its prerequisites are done; on SIGTERM end the running ones."""
    running: dict[str, subprocess.Popen] = {}
    try:
        _schedule(args, argv, out, jobs, done, failed, env, start, running)
    except (Stopped, KeyboardInterrupt):
        print(f"stopped: ending {sorted(running)}", flush=True)
        for p in running.values():
            p.terminate()
        for p in running.values():
            p.wait()


def _schedule(args, argv, out, jobs, done, failed, env, start, running) -> None:
    while len(done) + len(failed) < len(jobs):
        for j, p in list(running.items()):
            if p.poll() is not None:
                del running[j]
                (done if p.returncode == 0 else failed).add(j)
                print(f"[{time.perf_counter() - start:6.0f}s] {j}: {'done' if p.returncode == 0 else 'FAILED'}",
                      flush=True)
                write_report(args, out, done, failed, time.perf_counter() - start)  # a run cut short still has it
        ready = [j for j in jobs if j not in done | failed | set(running) and all(d in done for d in jobs[j])]
        blocked = [j for j in jobs if j not in done | failed | set(running) and any(d in failed for d in jobs[j])]
        failed.update(blocked)
        for j in ready[:max(0, args.jobs - len(running))]:
            log = open(out / "logs" / f"{j}.log", "w")
            running[j] = subprocess.Popen([sys.executable, __file__, *argv, "--one", j], stdout=log,
                                          stderr=subprocess.STDOUT, env=env)
        time.sleep(0.5)


def write_report(args, out: Path, done: set[str], failed: set[str], seconds: float) -> dict:
    """results.json (every figure) and summary.md (the tables) from the finished jobs' result files."""
    report = summarise(args, {j: json.loads((out / "results" / f"{j}.json").read_text()) for j in sorted(done)})
    report["failed"] = sorted(failed)
    report["wall_seconds"] = seconds
    (out / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "summary.md").write_text(tables(report))
    return report


def summarise(args, results: dict[str, dict]) -> dict:
    """The figures of every job, and per arm the mean over seeds."""
    report: dict = {"args": {k: v for k, v in vars(args).items() if k != "one"}, "jobs": results}
    infer = results.get("infer")
    if infer:
        report["inference_only"] = {m: {k: s[k] for k in ("mIoU", "reward", "format", "frames_kept_fraction",
                                                          "visual_tokens_kept_fraction")}
                                    for m, s in infer["scores"].items()}
        report["drops"] = {m: {"flash_kept": d["flash_kept"], "clips": len(d["clips"]),
                               "mean_patches_kept": d["mean_patches_kept"]} for m, d in infer["drops"].items()}
        report["start"] = infer["scores"].get("none", {}).get("mIoU")
    mdpo: dict = {}
    for arm in ("mdpo", "mdpo_swapped"):
        rows = {r["seed"]: r["scores"]["none"] for n, r in results.items() if n.startswith(f"{arm}-s")}
        if rows:
            mdpo[arm] = {"per_seed": {s: {"mIoU": v["mIoU"], "reward": v["reward"]} for s, v in rows.items()},
                         "mIoU": statistics.fmean(v["mIoU"] for v in rows.values()),
                         "reward": statistics.fmean(v["reward"] for v in rows.values())}
    pairs = {r["seed"]: r["summary"] for n, r in results.items() if n.startswith("pairs-s")}
    if pairs:
        mdpo["pairs"] = pairs
    report["mdpo"] = mdpo
    report["grpo"] = mode_arms(args, results, "grpo", "scores")
    report["adapt_sft"] = mode_arms(args, results, "adapt", "sft_scores")
    report["adapt"] = mode_arms(args, results, "adapt", "scores")
    return report


def mode_arms(args, results: dict[str, dict], prefix: str, key: str) -> dict:
    """Per drop mode, the mean over seeds of the held-out figures with its own mode and with none, and its reward
    relative to the `none` arm's (both with their own mode): the "within 2%" question."""
    arms: dict = {}
    for mode in args.modes:
        rows = {r["seed"]: r[key] for n, r in results.items() if n.startswith(f"{prefix}_{mode}-s") and key in r}
        if not rows:
            continue
        arms[mode] = {"per_seed": {s: {m: {"mIoU": v["mIoU"], "reward": v["reward"]} for m, v in sc.items()}
                                   for s, sc in rows.items()}}
        for as_mode in dict.fromkeys((mode, "none")):
            for k in ("mIoU", "reward"):
                arms[mode][f"{k}_{as_mode}"] = statistics.fmean(sc[as_mode][k] for sc in rows.values())
    if "none" in arms:
        base = arms["none"]["reward_none"]
        for mode, g in arms.items():
            g["reward_vs_none"] = g[f"reward_{mode}"] / base - 1 if base else float("nan")
            g["within_2pct"] = abs(g["reward_vs_none"]) <= WITHIN
            g["at_most_2pct_worse"] = g["reward_vs_none"] >= -WITHIN
    return arms


def tables(report: dict) -> str:
    lines = []
    if "inference_only" in report:
        lines += ["Start model, inference-only dropping (held out):", "",
                  "| mode | mIoU | reward | format | frames kept | visual tokens kept | clips with the flash kept |",
                  "|---|---|---|---|---|---|---|"]
        for m, s in report["inference_only"].items():
            d = report["drops"][m]
            lines.append(f"| {m} | {s['mIoU']:.3f} | {s['reward']:.3f} | {s['format']:.2f} | "
                         f"{s['frames_kept_fraction']:.3f} | {s['visual_tokens_kept_fraction']:.3f} | "
                         f"{d['flash_kept']}/{d['clips']} ({d['mean_patches_kept']:.2f} patches kept) |")
        lines.append("")
    mdpo = report.get("mdpo", {})
    if "mdpo" in mdpo or "mdpo_swapped" in mdpo:
        seeds = sorted({s for a in ("mdpo", "mdpo_swapped") for s in mdpo.get(a, {}).get("per_seed", {})})
        lines += ["M-DPO from the start model (held-out mIoU / reward):", "",
                  "| arm | " + " | ".join(f"seed {s}" for s in seeds) + " | mean |",
                  "|---|" + "---|" * (len(seeds) + 1)]
        start = report.get("start")
        if start is not None:
            lines.append("| start (SFT) | " + " | ".join(f"{start:.3f}" for _ in seeds) + f" | {start:.3f} |")
        for arm in ("mdpo", "mdpo_swapped"):
            if arm in mdpo:
                per = mdpo[arm]["per_seed"]
                lines.append(f"| {arm} | " + " | ".join(
                    f"{per[s]['mIoU']:.3f} / {per[s]['reward']:.3f}" if s in per else "-" for s in seeds)
                    + f" | {mdpo[arm]['mIoU']:.3f} / {mdpo[arm]['reward']:.3f} |")
        for s, p in sorted(mdpo.get("pairs", {}).items()):
            lines.append(f"\npairs seed {s}: {json.dumps(p)}")
        lines.append("")
    for key, title in (("grpo", "GRPO from the start model with each drop mode"),
                       ("adapt_sft", "SFT from the start model with each drop mode (adaptation)"),
                       ("adapt", "that SFT, then GRPO with the mode")):
        arms = report.get(key, {})
        if not arms:
            continue
        seeds = sorted({s for g in arms.values() for s in g["per_seed"]})
        lines += [f"{title} (held out, mean over seeds {seeds}):", "",
                  "| mode | mIoU own mode | reward own mode | mIoU with none | reward with none | "
                  "reward vs none arm | within 2% | at most 2% worse |", "|---|---|---|---|---|---|---|---|"]
        for mode, g in arms.items():
            lines.append(f"| {mode} | {g[f'mIoU_{mode}']:.3f} | {g[f'reward_{mode}']:.3f} | {g['mIoU_none']:.3f} | "
                         f"{g['reward_none']:.3f} | {g.get('reward_vs_none', float('nan')):+.1%} | "
                         f"{g.get('within_2pct', '-')} | {g.get('at_most_2pct_worse', '-')} |")
        lines.append("")
    if report.get("failed"):
        lines.append(f"FAILED jobs: {report['failed']}")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--start", default="shared_models/pix_sft720", help="a model that reads the flash clips")
    ap.add_argument("--data", default="shared_models/pix_setup_d0m2/data", help="its clip folder (train/val)")
    ap.add_argument("--out", default="runs/mdpo_tokendrop")
    ap.add_argument("--jobs", type=int, default=2, help="processes at a time, one thread each")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="cpu hides the GPUs; fp32 on both")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="trainer seeds (sampling and order)")
    ap.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    ap.add_argument("--skip-mdpo", action="store_true")
    ap.add_argument("--pairs-n", type=int, default=8, help="samples per train clip for M-DPO pairs")
    ap.add_argument("--min-gap", type=float, default=0.1)
    ap.add_argument("--mdpo-steps", type=int, default=40)
    ap.add_argument("--mdpo-lr", type=float, default=1.0e-4)
    ap.add_argument("--mdpo-beta", type=float, default=0.1)
    ap.add_argument("--mdpo-sft-gamma", type=float, default=0.0)
    ap.add_argument("--grpo-steps", type=int, default=40)
    ap.add_argument("--grpo-lr", type=float, default=1.0e-3)
    ap.add_argument("--adapt-sft-steps", type=int, default=0,
                    help="> 0: also SFT this many steps with each mode before its GRPO (the adapt_* jobs)")
    ap.add_argument("--adapt-sft-lr", type=float, default=3.0e-3)
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)  # run one job in this process (the scheduler's)
    args = ap.parse_args()
    if "none" not in args.modes:
        args.modes = ["none", *args.modes]  # the baseline every mode is compared with
    if args.one:
        result = run_job(args.one, args)
        path = Path(args.out) / "results" / f"{args.one}.json"
        path.with_suffix(".tmp").write_text(json.dumps(result, indent=2) + "\n")
        path.with_suffix(".tmp").replace(path)  # a job ended mid-write leaves no half result
        return
    run_all(args, sys.argv[1:])


if __name__ == "__main__":
    main()
