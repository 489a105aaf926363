"""Evidence for streaming GRPO: timing learned from the `stream_timing` reward, with a sign-flipped control.

1. A tiny streaming model (rlvid/models/stream_lm.py) is warm-started by SFT on "alert" streams
   ("Tell me when the red circle appears.") whose target response comes at a *random* chunk: it
   learns the answer and to speak once, not when.
2. From that checkpoint, GRPO with `stream_timing` + `stream_content` (weights 1, 0.5) trains on
   the training streams; the control runs the same with both weights negated.
3. Held-out streams (another seed) are decoded greedily before and after; the streaming metrics
   (rlvid/eval/streaming_metrics.py) are printed as JSON.

    python scripts/streaming_evidence.py --recipe recipes/grpo_streaming.yaml --out /tmp/stream_evidence.json

Command-line flags override the recipe's `streaming` and `data` values.
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import time

import torch
import yaml

from rewards import compose_rewards
from rlvid.data.synthetic_streaming import make_stream_clips
from rlvid.models.stream_lm import StreamVocab, TinyStreamLM
from rlvid.rollout.streaming import stream_chunks, teacher_trajectory
from rlvid.trainers.streaming_grpo import StreamingGRPOConfig, StreamingGRPOTrainer, streaming_sft_step


def words_of(clips) -> set[str]:
    """Every word of the clips' questions and expected answers: the tiny model's closed vocabulary."""
    text = " ".join(c.sample.question + " " + " ".join(e.content for e in c.sample.stream_events) for c in clips)
    return set(text.lower().replace(".", " ").replace("?", " ").replace(",", " ").split())


DEFAULT_REWARDS = [{"name": "stream_timing", "weight": 1.0}, {"name": "stream_content", "weight": 0.5}]
RECIPE_KEYS = {"rewards", "streaming", "data"}
FLAG_OF = {"stream_chunk_seconds": None, "num_generations": "generations", "streams_per_step": "streams", "lr": "lr",
           "temperature": None, "max_response_tokens": None, "steps": "steps", "sft_steps": "sft_steps",
           "kinds": None, "chunks": "chunks", "train": "train", "held_out": "held_out", "seed": "seed",
           "credit": "credit"}


def rewards(sign: float, specs: list | None = None):
    """The recipe's rewards, every weight multiplied by `sign` (-1: the sign-flipped control)."""
    return compose_rewards([dict(s, weight=sign * float(s.get("weight", 1.0))) for s in specs or DEFAULT_REWARDS])


def read_recipe(path: str, args: argparse.Namespace) -> list:
    """The recipe's rewards; its `streaming` / `data` values fill the flags not given on the command line."""
    with open(path) as f:
        recipe = yaml.safe_load(f) or {}
    unknown = set(recipe) - RECIPE_KEYS
    if unknown:
        raise SystemExit(f"{path}: unknown key(s) {sorted(unknown)}; allowed: {sorted(RECIPE_KEYS)}")
    for section in ("streaming", "data"):
        for key, value in (recipe.get(section) or {}).items():
            if key not in FLAG_OF:
                raise SystemExit(f"{path}: unknown key '{section}.{key}'; allowed: {sorted(FLAG_OF)}")
            name = FLAG_OF[key] or key
            if getattr(args, name, None) is None:
                setattr(args, name, value)
    return recipe.get("rewards") or DEFAULT_REWARDS


def warm_start(model, clips, steps: int, batch: int, seed: int) -> None:
    """SFT on random-time answers: the content and "speak once" are taught, the timing is not."""
    rng = random.Random(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for step in range(steps):
        trajs = []
        for k in range(batch):
            clip = clips[(step * batch + k) % len(clips)]
            chunks = stream_chunks(torch.as_tensor(clip.frames), clip.fps, 1.0)
            said = {rng.randrange(len(chunks)): e.content for e in clip.sample.stream_events}
            trajs.append(teacher_trajectory(model.vocab, clip.sample.question, chunks, said))
        streaming_sft_step(model, opt, trajs)


def run(args, specs: list | None = None) -> dict:
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    kinds = tuple(args.kinds or ("alert",))
    train = make_stream_clips(args.train, kinds, seed=args.seed, num_chunks=args.chunks)
    held_out = make_stream_clips(args.held_out, kinds, seed=args.seed + 1000, num_chunks=args.chunks)
    vocab = StreamVocab(sorted(words_of(train + held_out)), max_chunks=args.chunks)
    config = StreamingGRPOConfig(num_generations=args.generations, streams_per_step=args.streams, lr=args.lr,
                                 temperature=args.temperature, max_response_tokens=args.max_response_tokens,
                                 stream_chunk_seconds=args.stream_chunk_seconds, seed=args.seed,
                                 credit=args.credit, adv_scale=args.adv_scale)
    t0 = time.time()
    sft = TinyStreamLM(vocab, seed=args.seed)
    warm_start(sft, train, args.sft_steps, 16, args.seed)
    out = {"config": vars(args), "sft_seconds": round(time.time() - t0, 1)}
    out["sft"] = StreamingGRPOTrainer(sft, train, rewards(1.0, specs), config).evaluate(held_out)
    for name, sign in (("grpo", 1.0), ("control", -1.0)):
        if name not in args.runs:
            continue
        t0 = time.time()
        trainer = StreamingGRPOTrainer(copy.deepcopy(sft), train, rewards(sign, specs), config)
        history = []
        for step in range(args.steps):
            history.append(trainer.train_step(step))
            if args.verbose:
                print(name, step, {k: round(v, 3) for k, v in history[-1].items()}, flush=True)
        out[name] = trainer.evaluate(held_out)
        out[name]["train_reward_first"] = sum(h["reward"] for h in history[:5]) / 5
        out[name]["train_reward_last"] = sum(h["reward"] for h in history[-5:]) / 5
        out[name]["seconds"] = round(time.time() - t0, 1)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipe", default=None)
    p.add_argument("--kinds", nargs="+")
    p.add_argument("--steps", type=int)
    p.add_argument("--sft-steps", type=int)
    p.add_argument("--generations", type=int)
    p.add_argument("--streams", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--chunks", type=int)
    p.add_argument("--train", type=int)
    p.add_argument("--held-out", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--credit", choices=["decision", "trajectory"])
    p.add_argument("--verbose", action="store_true")
    p.add_argument("--runs", nargs="+", default=["grpo", "control"], choices=["grpo", "control"])
    p.add_argument("--adv-scale", choices=["group", "batch", "none"], default="group")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    specs = read_recipe(args.recipe, args) if args.recipe else None
    defaults = {"steps": 60, "sft_steps": 30, "generations": 8, "streams": 8, "lr": 3e-3, "chunks": 8, "train": 64,
                "held_out": 48, "seed": 0, "temperature": 1.0, "max_response_tokens": 3, "stream_chunk_seconds": 1.0,
                "credit": "decision"}
    for key, value in defaults.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    result = run(args, specs)
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
