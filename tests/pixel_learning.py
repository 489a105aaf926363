"""Learning that needs the pixels (issue 17): SFT then GRPO on flash clips, with the controls that show reading.

Test code shared by tests/test_pixel_learning.py and scripts/bench_learning.py (scripts put tests/ on sys.path).
The task (`flash_grounding` in rlvid/data/synthetic.py): a 12 s clip at 2 fps whose whole screen turns one colour
for one second, at a random temporal-patch-aligned time; the question names the colour and asks when. A constant
answer scores about 1/12 mIoU, so held-out mIoU well above that means the model reads the video. Controls: the
final model on blank and frame-shuffled copies of the held-out clips (rlvid/data/video_controls.py) must fall
back to the constant's level, and a sign-flipped GRPO run from the same SFT model must not improve.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from tiny_setup import merged, write_recipe

from rlvid.app.eval import run_eval
from rlvid.app.train import run_train
from rlvid.data.loaders import load_samples, write_jsonl
from rlvid.data.video_controls import write_control_set
from rlvid.eval.constant_baseline import best_constant_interval, constant_miou

MIOU = "eval/temporal_grounding/mIoU"
# 24 frames = 12 temporal patches of 2 frames; 64x48 frames resize to 32x32 (<= 1568 px) -> 1 visual token per patch.
FLASH_VIDEO = {"fps": 2.0, "min_frames": 4, "max_frames": 24, "total_pixels": 24 * 1568,
               "min_pixels_per_frame": 1568, "max_pixels_per_frame": 1568}
# IoU scored as the standard evaluation scores it (docs/fidelity.md): reversed or out-of-video answers earn 0.
# The prompts ask for the answer only (tiny_setup: data.reasoning false): the format reward forbids a think block.
REWARDS = {"functions": [{"name": "format", "weight": 0.5, "kwargs": {"think": "forbidden"}},
                         {"name": "temporal_iou", "weight": 0.5, "kwargs": {"on_reversed": "zero", "clip": False}}]}

# The setting that reads (docs/benchmarks.md "Learning"): SFT's training set adds 200 flash clips each of 2, 4 and 6 s
# (make_sft_set) and stops once 30% of 40 train-carved check clips are answered right; GRPO then runs 100 steps.
READING_SETTING = {"short_clips": (2, 4, 6), "short_n": 200, "sft_steps": 600, "sft_stop_at": 0.3, "sft_check": 40,
                   "sft_check_every": 20, "grpo_steps": 100}


def make_flash_setup(root: str | Path, arch: str = "qwen3_vl", seed: int = 0, n: int = 300,
                     control: str | None = None, model_seed: int | None = None, preset: str = "tiny",
                     held_out: int | None = None) -> dict[str, Path]:
    """Tiny model + flash-grounding clips under `root` (80% train, 20% held out); reused if already there.

    `seed` draws the clips, `model_seed` (default: `seed`) the tiny model's random weights, `preset` its sizes
    (rlvid/models/tiny.py PRESETS); `held_out` clips of the `n` (default 20%) are the held-out split.
    `control` ("blank" / "shuffled") replaces every video of both splits by its control copy: the same labels
    with pixels that say nothing, for showing that the learning checks fail without the video.
    """
    from rlvid.data.synthetic import make_synthetic_data
    from rlvid.models.tiny import make_tiny_model

    root = Path(root)
    model, data = root / (f"model-{arch}" if preset == "tiny" else f"model-{arch}-{preset}"), root / "data"
    if not (model / "config.json").is_file():
        make_tiny_model(model, arch=arch, preset=preset, seed=seed if model_seed is None else model_seed)
    if not (data / "train.jsonl").is_file():
        val_share = 0.2 if held_out is None else (held_out + 0.5) / n  # int(n * share) == held_out
        make_synthetic_data(data, n=n, seed=seed, duration=12.0, fps=2, width=64, height=48,
                            splits=(1.0 - val_share, val_share, 0.0), tasks=("flash_grounding",))
    if control:
        controlled = root / f"data-{control}"
        if not (controlled / "train.jsonl").is_file():
            for split in ("train", "val"):
                write_control_set(data / f"{split}.jsonl", controlled, control, seed=seed)
        data = controlled
    return {"model": model, "data": data}


def make_sft_set(root: str | Path, data: Path, seed: int, short_clips: tuple[int, ...] = (), short_n: int = 200,
                 check: int = 0, control: str | None = None) -> dict[str, Path]:
    """SFT's own clips under `root/sft_data[-control]`: the 12 s train clips of `data` plus `short_n` flash clips of
    each duration (whole seconds) in `short_clips`; the last `check` 12 s train clips are kept apart (`check.jsonl`).

    Why short clips: on 12 s clips the tiny model's loss sits at the answer prior for hundreds of steps before it
    starts copying the bright patch's timestamp, at a step that depends on the seed; clips of 2-6 s (2-6 time slots)
    make that retrieval easy to find, and what is learnt there carries over to 12 s. The check split is carved from
    TRAIN (never the held-out clips), for deciding when SFT stops. With `control` the short clips get the same
    control videos as `data`.
    """
    from rlvid.data.synthetic import make_synthetic_data

    root = Path(root)
    out = root / ("sft_data" if control is None else f"sft_data-{control}")
    if not (out / "train.jsonl").is_file():
        train = load_samples(str(data / "train.jsonl"), split="train").samples
        if not 0 <= check < len(train):
            raise ValueError(f"check must be in [0, {len(train)}) train clips, got {check}")
        fit, kept_apart = train[:len(train) - check], train[len(train) - check:]
        for duration in short_clips:
            clips = root / f"short-{duration}s"
            if not (clips / "train.jsonl").is_file():
                make_synthetic_data(clips, n=short_n, seed=1000 * (seed + 1) + duration, duration=float(duration),
                                    fps=2, width=64, height=48, splits=(1.0, 0.0, 0.0), tasks=("flash_grounding",))
            if control:
                clips = write_control_set(clips / "train.jsonl", root / f"short-{duration}s-{control}", control,
                                          seed=seed).parent
            fit += [dataclasses.replace(s, id=f"short{duration}s-{s.id}")
                    for s in load_samples(str(clips / "train.jsonl"), split="train").samples]
        write_jsonl(kept_apart, out / "check.jsonl")
        write_jsonl(fit, out / "train.jsonl")  # the last file written: its presence marks the set complete
    return {"train": out / "train.jsonl", "check": out / "check.jsonl"}


def last_eval(output_dir: Path, stage: str) -> dict[str, float]:
    rows = [json.loads(line) for line in open(Path(output_dir) / "metrics.jsonl")]
    return [r for r in rows if r.get("stage") == stage and MIOU in r][-1]


def train_iou(output_dir: Path) -> list[float]:
    rows = [json.loads(line) for line in open(Path(output_dir) / "metrics.jsonl")]
    return [r["rewards/temporal_iou"] for r in rows if "rewards/temporal_iou" in r]


def run_pixel_learning(root: str | Path, seed: int = 0, arch: str = "qwen3_vl", sft_steps: int = 520,
                       grpo_steps: int = 40, control: str | None = None, flipped: bool = True,
                       sft_lr: float = 1.0e-2, grpo_lr: float = 1.0e-3, grpo_overrides: dict | None = None,
                       model_seed: int | None = None, preset: str = "tiny", n: int = 300,
                       held_out: int | None = None, sft_overrides: dict | None = None,
                       short_clips: tuple[int, ...] = (), short_n: int = 200, sft_stop_at: float | None = None,
                       sft_check: int = 40, sft_check_every: int = 20) -> dict:
    """SFT, then GRPO (and a sign-flipped GRPO) from the SFT model; held-out mIoU of each, controls, baseline.

    `seed` draws the clips; `model_seed` (default: `seed`) the tiny model's weights and the trainers' seed;
    `preset`, `n` and `held_out` go to `make_flash_setup`; `sft_overrides` merge into the recipe's `sft` section
    (e.g. `lr_scheduler`, `warmup_ratio`); `short_clips` / `short_n` add short flash clips to SFT's training set
    (`make_sft_set`). With `sft_stop_at`, SFT is checked every `sft_check_every` steps on `sft_check` clips carved
    from train, and stops (trainer.stop_when) at the first check whose mIoU reaches `sft_stop_at`: GRPO then starts
    from a model that reads some time slots, which it can improve; `sft` is that model's held-out evaluation and
    `sft_check` its step and check mIoU.
    Returns a dict with the eval rows (`sft`, `grpo`, `flipped`), `blank` / `shuffled` (the GRPO model's mIoU on
    control copies of the held-out clips), `constant` (the best constant fitted on train, scored held out),
    `constant_oracle` (the best constant chosen on the held-out clips themselves), timings and train IoU curves.
    """
    root = Path(root)
    model_seed = seed if model_seed is None else model_seed
    setup = make_flash_setup(root / "setup", arch=arch, seed=seed, n=n, control=control, model_seed=model_seed,
                             preset=preset, held_out=held_out)
    val = setup["data"] / "val.jsonl"
    common = {"trainer": {"seed": model_seed, "eval_steps": 100000}, "data": {"video": dict(FLASH_VIDEO)},
              "rollout": {"max_new_tokens": 16}, "hooks": [{"name": "eval_grounding"}]}
    out: dict = {"arch": arch, "seed": seed, "model_seed": model_seed, "control": control, "preset": preset}
    train = load_samples(str(setup["data"] / "train.jsonl"), split="train").samples
    held_out_clips = load_samples(str(val), split="val").samples
    interval, _ = best_constant_interval(train)
    out["constant_interval"] = interval
    out["constant"] = constant_miou(interval, held_out_clips)
    out["constant_oracle"] = best_constant_interval(held_out_clips)[1]

    start = time.perf_counter()
    checking = sft_stop_at is not None
    sft_trainer: dict = {"algorithm": "sft", "micro_batch_size_per_device": 16}
    sft_data: dict = {}
    if short_clips or checking:
        sft_set = make_sft_set(root / "setup", setup["data"], seed, tuple(short_clips), short_n,
                               sft_check if checking else 0, control)
        sft_data["train"] = str(sft_set["train"])
    if checking:
        sft_data["val"] = str(sft_set["check"])
        sft_trainer.update(eval_steps=sft_check_every, stop_when={MIOU: sft_stop_at})
    sft_recipe = write_recipe(root / "sft.yaml", setup, root / "sft", merged(common, {
        "trainer": sft_trainer, "data": sft_data,
        "sft": {"steps": sft_steps, "lr": sft_lr, "global_samples_per_step": 16, **(sft_overrides or {})}}))
    sft_model = _train_once(sft_recipe, root / "sft")
    if checking:
        check = last_eval(root / "sft", "sft")
        out["sft_check"] = {"step": check["step"], "mIoU": check[MIOU]}
        out["sft"] = held_out_eval(sft_recipe, sft_model, val, root / "eval-sft")
    else:
        out["sft"] = last_eval(root / "sft", "sft")
    out["sft_seconds"] = time.perf_counter() - start

    runs = (("grpo", 1), ("flipped", -1)) if flipped else (("grpo", 1),)
    for name, sign in runs:
        start = time.perf_counter()
        recipe = write_recipe(root / f"{name}.yaml", {"model": sft_model, "data": setup["data"]}, root / name, merged({
            **common,
            "trainer": {**common["trainer"], "max_steps": grpo_steps, "lr": grpo_lr, "global_prompts_per_step": 8,
                        "micro_batch_size_per_device": 32, "loss_agg": "dapo", "advantage_sign": sign},
            "rollout": {**common["rollout"], "num_generations": 8, "temperature": 1.0},
            "rewards": REWARDS,
        }, grpo_overrides))
        model = _train_once(recipe, root / name)
        out[f"{name}_seconds"] = time.perf_counter() - start
        out[name] = last_eval(root / name, "grpo")
        out[f"{name}_train_iou"] = train_iou(root / name)
        if name == "grpo":
            out["grpo_model"] = str(model)
            out["grpo_recipe"] = str(recipe)

    start = time.perf_counter()
    for control_name in ("blank", "shuffled"):
        copy = write_control_set(val, root / f"val-{control_name}", control_name, seed=seed)
        folder = root / f"eval-{control_name}"
        out[control_name] = held_out_eval(out["grpo_recipe"], Path(out["grpo_model"]), copy, folder)[MIOU]
    out["controls_seconds"] = time.perf_counter() - start
    return out


def held_out_eval(recipe: Path, model: Path, val: Path, folder: Path) -> dict[str, float]:
    """Greedy evaluation of `model` on the held-out clips, keyed like the eval hook's rows (`eval/...`)."""
    if not (folder / "metrics.json").is_file():
        run_eval(str(recipe), checkpoint=str(model), overrides=[f"data.val={val}"], out=str(folder))
    metrics = json.loads((folder / "metrics.json").read_text())
    return {k if k.startswith("eval/") else f"eval/{k}": v for k, v in metrics.items()}


def _train_once(recipe: Path, output_dir: Path) -> Path:
    """Train, or reuse the finished model of an earlier call with the same folder (resumable benchmarks)."""
    final = output_dir / "final"
    if (final / "complete").is_file():
        return final
    return run_train(str(recipe))


def summary(r: dict) -> str:
    """One line with the figures the checks read."""
    parts = [f"{r['arch']} data seed {r['seed']}, model seed {r['model_seed']}"
             + (f" ({r['control']} videos)" if r["control"] else ""),
             f"held-out mIoU: constant {r['constant']:.3f} (oracle {r['constant_oracle']:.3f})",
             f"SFT {r['sft'][MIOU]:.3f}" + (" (ended at step {step}, check {mIoU:.3f})".format(**r["sft_check"])
                                             if "sft_check" in r else ""),
             f"GRPO {r['grpo'][MIOU]:.3f}"]
    if "flipped" in r:
        parts.append(f"flipped {r['flipped'][MIOU]:.3f}")
    parts += [f"GRPO model on blank {r['blank']:.3f}, shuffled {r['shuffled']:.3f}",
              "seconds: SFT {:.0f}, GRPO {:.0f}, flipped {:.0f}, controls {:.0f}".format(
                  r["sft_seconds"], r["grpo_seconds"], r.get("flipped_seconds", 0.0), r["controls_seconds"])]
    return "; ".join(parts)
