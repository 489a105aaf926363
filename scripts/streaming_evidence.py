"""Evidence for streaming GRPO: timing learned from the `stream_timing` reward, with a sign-flipped control.

1. A tiny streaming model (rlvid/models/stream_lm.py) is warm-started by SFT on "alert" streams
   ("Tell me when the red circle appears.") whose target response comes at a *random* chunk: it
   learns the answer and to speak once, not when.
2. From that checkpoint, GRPO with `stream_timing` + `stream_content` (weights 1, 0.5) trains on
   the training streams; the control runs the same with both weights negated.
3. Held-out streams (another seed) are decoded greedily before and after; the streaming metrics
   (rlvid/eval/streaming_metrics.py) are printed as JSON.

    python scripts/streaming_evidence.py --steps 40 --out /tmp/stream_evidence.json
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import time

import torch

from rewards import compose_rewards
from rlvid.data.synthetic_streaming import make_stream_clips
from rlvid.models.stream_lm import StreamVocab, TinyStreamLM
from rlvid.rollout.streaming import stream_chunks, teacher_trajectory
from rlvid.trainers.streaming_grpo import StreamingGRPOConfig, StreamingGRPOTrainer, streaming_sft_step

WORDS = "tell me when the red circle appears".split()


def rewards(sign: float):
    return compose_rewards([{"name": "stream_timing", "weight": sign * 1.0},
                            {"name": "stream_content", "weight": sign * 0.5}])


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
            trajs.append(teacher_trajectory(model.vocab, clip.sample.question, chunks,
                                            {rng.randrange(len(chunks)): "red circle"}))
        streaming_sft_step(model, opt, trajs)


def run(args) -> dict:
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    vocab = StreamVocab(WORDS, max_chunks=args.chunks)
    train = make_stream_clips(args.train, ("alert",), seed=args.seed, num_chunks=args.chunks)
    held_out = make_stream_clips(args.held_out, ("alert",), seed=args.seed + 1000, num_chunks=args.chunks)
    config = StreamingGRPOConfig(num_generations=args.generations, streams_per_step=args.streams, lr=args.lr,
                                 seed=args.seed)
    t0 = time.time()
    sft = TinyStreamLM(vocab, seed=args.seed)
    warm_start(sft, train, args.sft_steps, 16, args.seed)
    out = {"config": vars(args), "sft_seconds": round(time.time() - t0, 1)}
    out["sft"] = StreamingGRPOTrainer(sft, train, rewards(1.0), config).evaluate(held_out)
    for name, sign in (("grpo", 1.0), ("control", -1.0)):
        t0 = time.time()
        trainer = StreamingGRPOTrainer(copy.deepcopy(sft), train, rewards(sign), config)
        history = [trainer.train_step(step) for step in range(args.steps)]
        out[name] = trainer.evaluate(held_out)
        out[name]["train_reward_first"] = sum(h["reward"] for h in history[:5]) / 5
        out[name]["train_reward_last"] = sum(h["reward"] for h in history[-5:]) / 5
        out[name]["seconds"] = round(time.time() - t0, 1)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--sft-steps", type=int, default=60)
    p.add_argument("--generations", type=int, default=8)
    p.add_argument("--streams", type=int, default=8)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--chunks", type=int, default=8)
    p.add_argument("--train", type=int, default=64)
    p.add_argument("--held-out", type=int, default=48)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    result = run(args)
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
