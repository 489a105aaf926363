"""rlvid's M-DPO step side by side with TRL's DPOTrainer, at equal work, in one process.

Same random model (tiny or mid Qwen2.5-VL), same pairs (prompt text, chosen and rejected texts),
fp32, a live frozen reference in both, one optimizer step over all pairs per step. TRL's trainer
does not pass video to its training forwards, so it gets each prompt's frames as one image whose
visual token count equals rlvid's video (2 frames = 1 temporal patch; both counted in the
input_ids). Equal work is checked and printed before timing: visual tokens, prompt tokens and
completion tokens per row on both sides. Steps alternate (TRL, rlvid sharing off, rlvid default,
...), so machine load hits all of them alike; medians of wall and process CPU time, ratio last.

    python scripts/bench_vs_trl.py --preset mid --pairs 8 --steps 4
    python scripts/bench_vs_trl.py --preset mid --visual-tokens 160 --pairs 8 --steps 3

rlvid "sharing off" sets trainer.shared_prefix and trainer.reuse_vision to false; "default" is the
recipe defaults (a pair's chosen and rejected rows run the prompt and the video once).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

from rlvid.app.compose import grpo_trainer, mdpo_trainer
from rlvid.config import load_recipe
from rlvid.data.loaders import load_samples
from rlvid.data.prompts import build_messages
from rlvid.models.tiny import make_tiny_model
from rlvid.trainers.mdpo.batch import pair_micro_batches
from rlvid.trainers.mdpo.pairs import Pair

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the tiny fixtures live with the tests
from tiny_setup import make_tiny_setup, write_recipe  # noqa: E402

WORDS = "the red circle appears near the left edge moves right and fades out while a blue square stays".split()


def completion_text(seed: int, n_words: int) -> str:
    g = torch.Generator().manual_seed(seed)
    return " ".join(WORDS[int(i)] for i in torch.randint(0, len(WORDS), (n_words,), generator=g))


def make_pairs(data: Path, n: int, n_words: int) -> list[Pair]:
    samples = load_samples(str(data / "train.jsonl")).samples[:n]
    return [Pair(s.id, s, completion_text(2 * i, n_words), completion_text(2 * i + 1, n_words), 0.9, 0.1, batch="b")
            for i, s in enumerate(samples)]


def rlvid_trainer(setup, root: Path, pairs: list[Pair], sharing: bool, frames_pixels: int):
    video = {"fps": 1.0, "min_frames": 2, "max_frames": 2, "total_pixels": 2 * frames_pixels,
             "min_pixels_per_frame": frames_pixels, "max_pixels_per_frame": frames_pixels}
    name = "on" if sharing else "off"
    recipe = write_recipe(root / f"r-{name}.yaml", setup, root / f"run-{name}", {
        "data": {"video": video},
        "trainer": {"algorithm": "mdpo", "lr": 1e-6, "micro_batch_size_per_device": 2 * len(pairs),
                    "max_steps": 1000, "shared_prefix": sharing, "reuse_vision": sharing, "save_steps": 0},
        "mdpo": {"reference": "model", "pairs_per_step": len(pairs), "beta": 0.1, "sft_gamma": 0.0}})
    return mdpo_trainer(load_recipe(recipe), pairs, root, output_dir=root / f"run-{name}")


def as_image_prompt(messages: list[dict]) -> list[dict]:
    """rlvid's chat messages for a prompt with its video item turned into one image item (same text)."""
    out = []
    for m in messages:
        content = m["content"]
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        out.append({"role": m["role"], "content": [{"type": "image"} if c.get("type") == "video" else c
                                                   for c in content]})
    return out


def trl_trainer(model_path: Path, root: Path, pairs: list[Pair], grid_hw: tuple[int, int], prompts: list[list]):
    from datasets import Dataset
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from trl import DPOConfig, DPOTrainer

    processor = AutoProcessor.from_pretrained(model_path)
    patch = processor.image_processor.patch_size
    size = (grid_hw[1] * patch, grid_hw[0] * patch)  # PIL: (width, height)
    rows = [{"images": [Image.new("RGB", size, (i * 20 % 255, 80, 160))],
             "prompt": prompts[i],
             "chosen": [{"role": "assistant", "content": [{"type": "text", "text": p.chosen}]}],
             "rejected": [{"role": "assistant", "content": [{"type": "text", "text": p.rejected}]}]}
            for i, p in enumerate(pairs)]
    processor.image_processor.min_pixels = processor.image_processor.max_pixels = size[0] * size[1]
    processor.image_processor.size = {"shortest_edge": size[0] * size[1], "longest_edge": size[0] * size[1]}
    args = DPOConfig(output_dir=str(root / "trl"), per_device_train_batch_size=len(pairs), max_length=None,
                     beta=0.1, learning_rate=1e-6, report_to=[], use_cpu=True, bf16=False, fp16=False,
                     logging_steps=10_000, save_strategy="no", dataloader_num_workers=0, remove_unused_columns=False)
    model = AutoModelForImageTextToText.from_pretrained(model_path, dtype=torch.float32)
    trainer = DPOTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=processor)
    trainer.create_optimizer()
    trainer.current_gradient_accumulation_steps = 1  # set by Trainer.train(), which the interleaved steps bypass
    batch = next(iter(trainer.get_train_dataloader()))
    return trainer, batch, processor


def trl_step(trainer, batch) -> None:
    trainer.model.train()
    trainer.training_step(trainer.model, batch)
    trainer.optimizer.step()
    trainer.optimizer.zero_grad()


def grpo_rlvid_trainer(setup, root: Path, sharing: bool, frames_pixels: int, group: int, beta: float, new: int):
    video = {"fps": 1.0, "min_frames": 2, "max_frames": 2, "total_pixels": 2 * frames_pixels,
             "min_pixels_per_frame": frames_pixels, "max_pixels_per_frame": frames_pixels}
    name = f"grpo-{'on' if sharing else 'off'}"
    recipe = write_recipe(root / f"r-{name}.yaml", setup, root / f"run-{name}", {
        "data": {"video": video}, "rollout": {"num_generations": group, "max_new_tokens": new},
        "trainer": {"lr": 1e-6, "micro_batch_size_per_device": 8, "global_prompts_per_step": 2, "max_steps": 1000,
                    "beta": beta, "shared_prefix": sharing, "reuse_vision": sharing, "save_steps": 0}})
    trainer = grpo_trainer(load_recipe(recipe), root, output_dir=root / f"run-{name}")
    trainer.model.generation_config.min_new_tokens = new  # fixed completion length, as TRL's side
    return trainer


def grpo_trl_trainer(model_path: Path, root: Path, prompts: list[list], grid_hw: tuple[int, int], group: int,
                     beta: float, new: int):
    from datasets import Dataset
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from trl import GRPOConfig, GRPOTrainer

    processor = AutoProcessor.from_pretrained(model_path)
    patch = processor.image_processor.patch_size
    size = (grid_hw[1] * patch, grid_hw[0] * patch)
    processor.image_processor.min_pixels = processor.image_processor.max_pixels = size[0] * size[1]
    processor.image_processor.size = {"shortest_edge": size[0] * size[1], "longest_edge": size[0] * size[1]}
    rows = [{"image": Image.new("RGB", size, (i * 20 % 255, 80, 160)), "prompt": p} for i, p in enumerate(prompts)]
    args = GRPOConfig(output_dir=str(root / "trl-grpo"), per_device_train_batch_size=2 * group, num_generations=group,
                      max_completion_length=new, generation_kwargs={"min_new_tokens": new}, beta=beta,
                      learning_rate=1e-6, report_to=[], use_cpu=True, bf16=False, fp16=False, temperature=1.0,
                      logging_steps=10_000, save_strategy="no", dataloader_num_workers=0)
    model = AutoModelForImageTextToText.from_pretrained(model_path, dtype=torch.float32)
    gen = torch.Generator().manual_seed(0)

    def reward(completions, **_):
        return torch.rand(len(completions), generator=gen).tolist()

    trainer = GRPOTrainer(model=model, reward_funcs=[reward], args=args, train_dataset=Dataset.from_list(rows),
                          processing_class=processor)
    trainer.create_optimizer()
    trainer.current_gradient_accumulation_steps = 1
    batch = next(iter(trainer.get_train_dataloader()))
    return trainer, batch, processor


def grpo_trl_step(trainer, batch) -> None:
    trainer.model.train()
    trainer.training_step(trainer.model, batch, None)
    trainer.optimizer.step()
    trainer.optimizer.zero_grad()


def timed(fn) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def run_interleaved(runs: dict, steps: int, base: str) -> None:
    """Alternate the frameworks' steps; print medians of wall and process CPU time, ratio to `base` last."""
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in runs}
    for i in range(steps + 1):
        for name, fn in runs.items():
            w, c = timed(fn)
            print(f"    round {i}{' (warm-up)' if not i else ''}: {name:<20} wall {w:7.3f} s  cpu {c:7.3f} s",
                  flush=True)
            if i:  # the first round is warm-up
                times[name].append((w, c))
    base_w = statistics.median(w for w, _ in times[base])
    base_c = statistics.median(c for _, c in times[base])
    print(f"  medians of {steps} steps (after 1 warm-up), interleaved:")
    for name, ts in times.items():
        w, c = statistics.median(x for x, _ in ts), statistics.median(x for _, x in ts)
        print(f"  {name:<20} wall {w:7.3f} s  cpu {c:7.3f} s   ratio to {base}: wall {w / base_w:.3f}x  "
              f"cpu {c / base_c:.3f}x")


def image_prompts(builder, samples) -> list[list]:
    return [as_image_prompt(build_messages(s, builder.template, builder.reasoning, builder.system)) for s in samples]


def bench_dpo(args, setup, root: Path, frame_pixels: int) -> None:
    pairs = make_pairs(setup["data"], args.pairs, args.words)
    ours = {"rlvid, sharing off": rlvid_trainer(setup, root, pairs, False, frame_pixels),
            "rlvid default": rlvid_trainer(setup, root, pairs, True, frame_pixels)}
    t = ours["rlvid default"]
    b = pair_micro_batches(t.chain_policy, pairs, len(pairs), shared_prefix=False)[0].seq
    grid = b.inputs["video_grid_thw"][0].tolist()  # the frames' grid after the resize: the image gets the same
    prompts = image_prompts(t.chain_policy.builder, [p.prompt_item() for p in pairs])
    trl, batch, processor = trl_trainer(setup["model"], root, pairs, (grid[1], grid[2]), prompts)

    video_tokens = (b.inputs["input_ids"] == processor.video_token_id).sum(1)
    image_tokens = (batch["input_ids"] == processor.image_token_id).sum(1)
    r_prompt = b.inputs["attention_mask"].sum(1) - b.mask.sum(1)
    t_prompt = batch["attention_mask"].sum(1) - batch["completion_mask"].sum(1)
    print(f"DPO preset={args.preset} pairs={args.pairs} rows per step={2 * args.pairs} fp32, live reference, "
          f"torch threads={torch.get_num_threads()}")
    print(f"  visual tokens per row:   rlvid video {sorted(set(video_tokens.tolist()))}  "
          f"TRL image {sorted(set(image_tokens.tolist()))}")
    print(f"  prompt tokens per row:   rlvid {sorted(set(r_prompt.tolist()))}  TRL {sorted(set(t_prompt.tolist()))}")
    print(f"  completion tokens total: rlvid {int(b.mask.sum())}  TRL {int(batch['completion_mask'].sum())}")
    runs = {"TRL": lambda: trl_step(trl, batch)}
    for name, trainer in ours.items():
        trainer.model.train()
        runs[name] = (lambda tr: lambda: tr.train_step(pairs, 0))(trainer)
    run_interleaved(runs, args.steps, "TRL")


def bench_grpo(args, setup, root: Path, frame_pixels: int) -> None:
    g, new = args.group, args.new_tokens
    ours = {"rlvid, sharing off": grpo_rlvid_trainer(setup, root, False, frame_pixels, g, args.beta, new),
            "rlvid default": grpo_rlvid_trainer(setup, root, True, frame_pixels, g, args.beta, new)}
    t = ours["rlvid default"]
    samples = t.train_samples[:2]
    enc = t.policy.encode(samples)
    grid = enc[0].visual["video_grid_thw"][0].tolist()
    prompts = image_prompts(t.policy.builder, samples)
    trl, batch, processor = grpo_trl_trainer(setup["model"], root, prompts, (grid[1], grid[2]), g, args.beta, new)
    video_tokens = [int((e.tokens["input_ids"] == processor.video_token_id).sum()) for e in enc]
    r_prompt = [int(e.tokens["input_ids"].shape[0]) for e in enc]
    texts = [processor.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in prompts]
    t_inputs = processor(images=[[x["image"]] for x in batch[::g]], text=texts, padding=True, return_tensors="pt")
    image_tokens = (t_inputs["input_ids"] == processor.image_token_id).sum(1).tolist()
    print(f"GRPO preset={args.preset} G={g} prompts per step=2 micro-batch 8 beta={args.beta} completions fixed at "
          f"{new} tokens (min_new_tokens), fp32, torch threads={torch.get_num_threads()}")
    print(f"  visual tokens per prompt: rlvid video {video_tokens}  TRL image {image_tokens}")
    print(f"  prompt tokens per prompt: rlvid {r_prompt}  TRL {t_inputs['attention_mask'].sum(1).tolist()}")
    lengths: dict[str, list[float]] = {k: [] for k in ("TRL", *ours)}

    def trl_run():
        grpo_trl_step(trl, batch)
        lengths["TRL"].append(trl._metrics["train"]["completions/mean_length"][-1])

    runs = {"TRL": trl_run}
    for name, trainer in ours.items():
        trainer.model.train()

        def run(tr=trainer, name=name):
            lengths[name].append(tr.train_step(samples, 0)["rollout/completion_length"])
        runs[name] = run
    run_interleaved(runs, args.steps, "TRL")
    print("  mean completion length per step: " + "  ".join(f"{k} {v}" for k, v in lengths.items()))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--algo", default="dpo", choices=["dpo", "grpo"])
    ap.add_argument("--preset", default="tiny", choices=["tiny", "mid"])
    ap.add_argument("--visual-tokens", type=int, default=70, choices=[70, 160, 640],
                    help="target per prompt; the counts that ran are printed")
    ap.add_argument("--steps", type=int, default=4, help="timed steps per framework (after one warm-up)")
    ap.add_argument("--pairs", type=int, default=8, help="dpo: pairs per step (one micro-batch)")
    ap.add_argument("--words", type=int, default=40, help="dpo: words per chosen / rejected completion")
    ap.add_argument("--group", type=int, default=8, help="grpo: G")
    ap.add_argument("--beta", type=float, default=0.0, help="grpo: KL coefficient (> 0 adds the reference pass)")
    ap.add_argument("--new-tokens", type=int, default=64, help="grpo: completion length (fixed)")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    torch.manual_seed(0)
    grid_hw = {70: (14, 20), 160: (20, 32), 640: (40, 64)}[args.visual_tokens]  # patches; /4 after the 2x2 merge
    root = Path(tempfile.mkdtemp(prefix="bench_vs_trl_"))
    setup = make_tiny_setup(root, n=max(40, args.pairs))
    setup["model"] = make_tiny_model(root / f"model-{args.preset}", preset=args.preset)
    frame_pixels = grid_hw[0] * grid_hw[1] * 14 * 14
    (bench_dpo if args.algo == "dpo" else bench_grpo)(args, setup, root, frame_pixels)


if __name__ == "__main__":
    main()
