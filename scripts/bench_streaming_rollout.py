"""Streaming rollouts: per-branch (`stream_rollouts`, one forward per tree branch) vs batched
(`batched_stream_rollouts`, one `forward_batch` per lockstep step for all streams), side by side.

Both decode the same streams with the same tiny streaming LM, alternating, `--reps` times each;
the figure to read is the ratio of medians (the machine may be shared). A random model speaks
after most chunks, like the sign-flipped control, so its trajectories share little cache: the
slow case. `--sft-steps` warm-starts the model first (about one response per stream).

    python scripts/bench_streaming_rollout.py --streams 8 --generations 8 --reps 3
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from rlvid.app.stream_compose import words_of
from rlvid.data.synthetic_streaming import make_stream_clips
from rlvid.models.stream_lm import StreamVocab, TinyStreamLM
from rlvid.rollout.streaming import StreamSampling, stream_chunks, stream_rollouts
from rlvid.rollout.streaming_batched import batched_stream_rollouts
from rlvid.trainers.streaming_sft import streaming_warm_start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--streams", type=int, default=8)
    p.add_argument("--generations", type=int, default=8)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--sft-steps", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    clips = make_stream_clips(args.streams, ("alert",), seed=0)
    model = TinyStreamLM(StreamVocab(words_of(clips), max_chunks=8), seed=0)
    if args.sft_steps:
        streaming_warm_start(model, clips, steps=args.sft_steps)
    model.eval()
    questions = [c.sample.question for c in clips]
    streams = [stream_chunks(torch.as_tensor(c.frames), c.fps, 1.0) for c in clips]
    sampling = StreamSampling(1.0, 3)

    def per_branch():
        gen = torch.Generator().manual_seed(0)
        return [t for q, s in zip(questions, streams, strict=True)
                for t in stream_rollouts(model, q, s, args.generations, sampling, gen)]

    def batched():
        return batched_stream_rollouts(model, questions, streams, args.generations, sampling,
                                       torch.Generator().manual_seed(0))

    times: dict[str, list[float]] = {"per_branch": [], "batched": []}
    responses = {}
    for _ in range(args.reps):
        for name, fn in (("per_branch", per_branch), ("batched", batched)):
            start = time.perf_counter()
            trajs = fn()
            times[name].append(time.perf_counter() - start)
            responses[name] = sum(len(t.responses) for t in trajs) / len(trajs)
    med = {k: statistics.median(v) for k, v in times.items()}
    for k in times:
        print(f"{k:>10}: median {med[k]:.2f} s over {args.reps} reps, {responses[k]:.2f} responses per trajectory")
    print(f"speed-up (per_branch / batched): {med['per_branch'] / med['batched']:.1f}x "
          f"({args.streams} streams x {args.generations} trajectories, {args.threads} thread)")


if __name__ == "__main__":
    main()
