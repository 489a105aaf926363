"""Streaming rollouts on a Qwen-VL policy: the kept KV cache vs a full re-prefill per forward, side by side.

The same `stream_rollouts` (G trajectories per stream, shared prefix tree) runs on
`QwenVLStream` twice per round: `cached` feeds each chunk and decision once on top of the
branch's KV cache; `reprefill` is the same model without a cache, as an engine that re-reads the
stream would be: every forward runs the branch's whole sequence again (vision features still
reused, so the difference is the language model). Rounds alternate the order; figures are
medians, and the ratio reprefill / cached is the speed-up. Options: `--drop` adds DTD token
dropping (threshold 0.02) to the cached side, `--no-reuse` turns vision reuse off there.

    python scripts/bench_stream_vl.py --arch qwen2_5_vl qwen3_vl --preset tiny --chunks 8 --G 8 --rounds 3

`--grpo-steps N` instead times N streaming GRPO steps (`StreamingGRPOTrainer.train_step`, 8 streams x G)
per architecture and on the tiny streaming LM (`rlvid.models.stream_lm`), in one process:

    python scripts/bench_stream_vl.py --grpo-steps 3 --streams 8
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from transformers import DynamicCache

from rewards import compose_rewards
from rlvid.data.synthetic_streaming import make_stream_clips
from rlvid.models.stream_lm import StreamVocab, TinyStreamLM
from rlvid.models.tiny import make_tiny_model
from rlvid.policy.stream_vl import QwenVLStream, StreamPiece
from rlvid.rollout.streaming import StreamSampling, stream_chunks, stream_rollouts
from rlvid.trainers.streaming_grpo import StreamingGRPOConfig, StreamingGRPOTrainer


class _History:
    """A re-prefill branch's 'cache': the pieces fed so far (forks copy the list, not the tensors)."""

    def __init__(self, pieces: list[StreamPiece]):
        self.pieces = pieces

    def __deepcopy__(self, memo):
        return _History(list(self.pieces))


class RePrefill:
    """`QwenVLStream` without a KV cache: each forward feeds the branch's whole sequence from position 0."""

    def __init__(self, stream: QwenVLStream):
        self.stream, self.vocab = stream, stream.vocab

    def embed(self, ids, frames=None) -> StreamPiece:
        return self.stream.embed(ids, frames)

    def __call__(self, piece: StreamPiece, cache=None):
        pieces = (cache.pieces if isinstance(cache, _History) else []) + [piece]
        whole = StreamPiece(torch.cat([p.ids for p in pieces]), [b for p in pieces for b in p.blocks])
        logits, _ = self.stream(whole, DynamicCache())
        return logits, _History(pieces)


def run(model, clips, chunk_seconds: float, g: int, seed: int) -> float:
    generator = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    for clip in clips:
        chunks = stream_chunks(torch.as_tensor(clip.frames), clip.fps, chunk_seconds)
        stream_rollouts(model, clip.sample.question, chunks, g, StreamSampling(temperature=1.0), generator)
    return time.perf_counter() - start


def bench(arch: str, args) -> dict:
    folder = make_tiny_model(Path(args.work) / f"{arch}_{args.preset}", arch, args.preset)
    clips = make_stream_clips(args.streams, ("alert",), seed=0, num_chunks=args.chunks,
                              chunk_seconds=args.chunk_seconds, size=args.size)
    cached = QwenVLStream.from_pretrained(str(folder), fps=2.0, reuse_vision=not args.no_reuse,
                                          drop_threshold=0.02 if args.drop else None).eval()
    plain = QwenVLStream.from_pretrained(str(folder), fps=2.0).eval()
    baseline = RePrefill(plain)
    times = {"cached": [], "reprefill": []}
    fed = {}
    with torch.no_grad():
        for r in range(args.rounds):
            order = [("cached", cached), ("reprefill", baseline)]
            for name, model in order if r % 2 == 0 else order[::-1]:
                times[name].append(run(model, clips, args.chunk_seconds, args.G, seed=r))
                stats = (model.stream if name == "reprefill" else model).pop_stats()
                fed[name] = stats["tokens_fed"]
                if name == "cached":
                    fed["cached_stats"] = stats
    out = {name: statistics.median(v) for name, v in times.items()}
    return {"arch": arch, "preset": args.preset, "streams": args.streams, "chunks": args.chunks, "G": args.G,
            "seconds_cached": round(out["cached"], 3), "seconds_reprefill": round(out["reprefill"], 3),
            "speedup": round(out["reprefill"] / out["cached"], 2),
            "positions_cached": fed["cached"], "positions_reprefill": fed["reprefill"],
            "positions_ratio": round(fed["reprefill"] / fed["cached"], 2), "cached_stats": fed["cached_stats"],
            "threads": torch.get_num_threads()}


def grpo_steps(args) -> dict:
    """Seconds per streaming GRPO step for each model (the recipe's rewards; max 3 response tokens)."""
    clips = make_stream_clips(args.streams, ("alert",), seed=0, num_chunks=args.chunks,
                              chunk_seconds=args.chunk_seconds, size=args.size)
    config = StreamingGRPOConfig(num_generations=args.G, streams_per_step=args.streams, lr=1e-3,
                                 max_response_tokens=3, stream_chunk_seconds=args.chunk_seconds)
    words = "tell me when the red circle appears".split()
    models = {"tiny_stream_lm": TinyStreamLM(StreamVocab(words, max_chunks=args.chunks,
                                                         chunk_seconds=args.chunk_seconds))}
    for arch in args.arch:
        folder = make_tiny_model(Path(args.work) / f"{arch}_{args.preset}", arch, args.preset)
        models[arch] = QwenVLStream.from_pretrained(str(folder), fps=2.0)
    out = {}
    for name, model in models.items():
        trainer = StreamingGRPOTrainer(model, clips, compose_rewards(["stream_timing", "stream_content"]), config)
        seconds = []
        for step in range(args.grpo_steps):
            start = time.perf_counter()
            metrics = trainer.train_step(step)
            seconds.append(round(time.perf_counter() - start, 2))
        out[name] = {"seconds_per_step": seconds, "responses_per_stream": metrics["responses_per_stream"]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", nargs="+", default=["qwen2_5_vl", "qwen3_vl"])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--streams", type=int, default=2)
    parser.add_argument("--chunks", type=int, default=8)
    parser.add_argument("--chunk-seconds", type=float, default=1.0)
    parser.add_argument("--size", type=int, default=32, help="frame side in pixels")
    parser.add_argument("--G", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--drop", action="store_true")
    parser.add_argument("--no-reuse", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--grpo-steps", type=int, default=0, help="time streaming GRPO steps instead")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as work:
        args.work = work
        rows = grpo_steps(args) if args.grpo_steps else [bench(arch, args) for arch in args.arch]
    text = json.dumps(rows, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
