"""M-DPO and visual-token dropping judged on the flash-grounding task (issue 17 item 4).

Test code shared by scripts/bench_mdpo_tokendrop.py (scripts put tests/ on sys.path). Everything starts from one
model that already reads the pixels (an SFT model on the flash clips, tests/pixel_learning.py) and its clip folder:

- M-DPO: pairs from the start model's own samples on the train clips, ranked by temporal IoU (`build_pairs`),
  trained as they are and with chosen and rejected swapped (`swap_pairs`: the control, which must not improve);
- token dropping: GRPO from the start model with each `data.video.token_drop.mode`, each model scored held out
  with its own mode and with none (`heldout_scores`); `drop_report` says what each mode keeps of a flash clip.
"""

from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path

from pixel_learning import FLASH_VIDEO, REWARDS
from tiny_setup import merged, write_recipe

# The metric that ranks M-DPO samples: temporal IoU as the evaluation scores it (reversed/out-of-video answers 0).
IOU_METRIC = [{"name": "temporal_iou", "weight": 1.0, "kwargs": {"on_reversed": "zero", "clip": False}}]
MODES = ("none", "token", "frame", "patch")


def flash_recipe(path: Path, model: str | Path, data: Path, output_dir: Path, seed: int,
                 overrides: dict | None = None) -> Path:
    """A recipe on the flash clips (the learning test's video, rewards and eval hook), fp32, merged with `overrides`."""
    common = {"model": {"dtype": "fp32"},
              "trainer": {"seed": seed, "eval_steps": 100000, "precision": "no", "save_total_limit": 1},
              "data": {"video": dict(FLASH_VIDEO)}, "rollout": {"max_new_tokens": 16},
              "rewards": REWARDS, "hooks": [{"name": "eval_grounding"}]}
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_recipe(path, {"model": Path(model), "data": Path(data)}, output_dir, merged(common, overrides))


def train_once(recipe: Path) -> Path:
    """Train, or reuse the finished model of an earlier call with the same output folder (resumable benchmarks)."""
    from rlvid.app.train import run_train
    from rlvid.config import load_recipe

    final = Path(load_recipe(str(recipe)).trainer.output_dir) / "final"
    if (final / "complete").is_file():
        return final
    return run_train(str(recipe))


def build_pairs(recipe: Path, model: str | Path, out: Path, n: int) -> Path:
    """The M-DPO pair folder `out`: `n` samples per train clip from `model`, ranked by the recipe's mdpo.metric."""
    from rlvid.app.mdpo import run_mdpo_pairs

    return run_mdpo_pairs(str(recipe), n=n, out=str(out), model=str(model))


def swap_pairs(src: Path, dst: Path) -> Path:
    """A copy of the pair folder `src` with every pair's chosen and rejected sides exchanged (texts, token ids,
    and reference log-probs): the swapped-pair control trains toward the lower-IoU sample of each pair."""
    from rlvid.trainers.mdpo.pairs import is_complete

    if is_complete(dst):
        return dst
    if not is_complete(src):
        raise FileNotFoundError(f"{src}: not a complete pair folder (no 'complete' marker)")
    dst.mkdir(parents=True, exist_ok=True)
    for path in sorted(src.iterdir()):
        if path.name.startswith("pairs-rank"):
            rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            (dst / path.name).write_text("".join(json.dumps(_swapped(r)) + "\n" for r in rows))
        elif path.is_file() and path.name != "complete":
            shutil.copy(path, dst / path.name)
    (dst / "complete").write_text("ok\n")
    return dst


def _swapped(row: dict) -> dict:
    """Texts, token ids and reference log-probs change sides; the scores stay, so the pair's gap stays its metric
    difference (the trainer requires gap >= 0; with gap_weighting none it does not enter the loss)."""
    out = dict(row)
    for a, b in (("chosen", "rejected"), ("chosen_ids", "rejected_ids"), ("ref_chosen_logp", "ref_rejected_logp")):
        out[a], out[b] = row[b], row[a]
    out["meta"] = {**row.get("meta", {}), "swapped": True}
    return out


def heldout_scores(recipe: Path, model: str | Path, mode: str, split: str = "val") -> dict:
    """Greedy completions of `model` on the recipe's `split` clips with token_drop.mode `mode`; mean temporal IoU
    (= the evaluation's mIoU, standard convention), mean total reward (format 0.5 + IoU 0.5), and what was kept."""
    from rewards import compose_rewards, sample_columns
    from rlvid.config import load_recipe
    from rlvid.data.recipe_data import load_split, make_input_builder
    from rlvid.eval.predict import predict
    from rlvid.models.loading import load_policy, load_processor
    from rlvid.policy import Policy

    cfg = load_recipe(str(recipe), [f"data.video.token_drop.mode={mode}"])
    samples = load_split(cfg, split)
    builder = make_input_builder(cfg, load_processor(str(model)))
    policy = Policy(load_policy(cfg.model, str(model)).eval(), builder)
    texts = predict(policy, samples, batch_size=16, max_new_tokens=cfg.rollout.max_new_tokens)
    out = compose_rewards(cfg.rewards.functions, base_dir=Path(recipe).parent)(texts, **sample_columns(samples))
    stats = policy.pop_stats()
    frames = [builder.video(s).frames.shape[0] for s in samples]
    return {"mode": mode, "mIoU": statistics.fmean(out.scores["temporal_iou"]), "reward": statistics.fmean(out.total),
            "format": statistics.fmean(out.scores["format"]), "clips": len(samples),
            "frames_kept_fraction": statistics.fmean(f / FLASH_VIDEO["max_frames"] for f in frames),
            "visual_tokens_kept_fraction": (stats.visual_tokens_kept / stats.visual_tokens_total
                                            if stats.visual_tokens_total else 1.0),
            "completions": texts[:8]}


def drop_report(recipe: Path, model: str | Path, mode: str, n: int = 12, split: str = "val") -> dict:
    """What `mode` keeps of the first `n` flash clips: kept temporal patches (their times) and whether the flash's
    patch is among them (frame / patch: at decode time; token: the patch has a kept visual token)."""
    from rlvid.config import load_recipe
    from rlvid.data.recipe_data import load_split, make_input_builder
    from rlvid.models.loading import load_processor
    from rlvid.models.token_prune import TokenPruneSettings, video_keep_masks

    cfg = load_recipe(str(recipe), [f"data.video.token_drop.mode={mode}"])
    builder = make_input_builder(cfg, load_processor(str(model)))
    ff = builder.sampling.frame_factor
    clips = []
    for sample in load_split(cfg, split)[:n]:
        video = builder.video(sample)
        start, end = sample.intervals[0]
        times = [video.timestamps[i] for i in range(0, len(video.timestamps), ff)]  # one per kept temporal patch
        if mode == "token":
            inputs = builder.process_prompts([builder.prompt_text(sample)], [video], padding_side="left")
            settings = TokenPruneSettings.from_processor(builder.processor, cfg.data.video.token_drop.threshold,
                                                         cfg.data.video.token_drop.min_kept_frames)
            mask = video_keep_masks(inputs["pixel_values_videos"], inputs["video_grid_thw"], settings)[0]
            per_patch = mask.view(len(times), -1).sum(1).tolist()
        else:
            per_patch = [-1] * len(times)  # whole patches: every token of a kept patch is kept
        kept = [t for t, k in zip(times, per_patch, strict=True) if k != 0]
        clips.append({"id": sample.id, "flash": [start, end], "kept_patch_times": kept,
                      "tokens_per_kept_patch": [k for k in per_patch if k != 0] if mode == "token" else None,
                      "flash_kept": any(start - 1e-6 <= t < end for t in kept)})
    return {"mode": mode, "clips": clips, "flash_kept": sum(c["flash_kept"] for c in clips),
            "mean_patches_kept": statistics.fmean(len(c["kept_patch_times"]) for c in clips)}
