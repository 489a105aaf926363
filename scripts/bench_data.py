"""Benchmark: decode + processor time per video, decoding once per group vs once per rollout.

30-second 720p synthetic clips (30 fps, grain for a ~10 Mbit/s bitrate for a realistic bitrate), sampled at 2 fps with
Temporal-R1's 2048x28x28 pixel budget, G=8 rollouts per prompt. Both ways run side by side in
one process on the same clips, so the ratio is what to read (absolute times are noisy here).

    python scripts/bench_data.py --clips 3 --group 8
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from rlvid.data.loaders import load_jsonl
from rlvid.data.model_inputs import VideoInputBuilder
from rlvid.data.synthetic import make_synthetic_data
from rlvid.data.video import VideoSampling
from rlvid.data.video_cache import VideoCache
from rlvid.models.tiny import make_tiny_model


def _time_group(builder: VideoInputBuilder, samples, group: int, shared: bool) -> tuple[float, int]:
    """Seconds to prepare `group` rollouts' inputs for each sample; frames decoded."""
    frames = 0
    start = time.perf_counter()
    for sample in samples:
        if not shared:
            builder.cache.clear()  # what a framework without a per-step cache does: decode per rollout
        for _ in range(group):
            if not shared:
                builder.cache.clear()
            misses = builder.cache.stats.misses
            builder.prompts([sample])
            if builder.cache.stats.misses > misses:
                frames += builder.video(sample).frames.shape[0]
    return time.perf_counter() - start, frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=3)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    args = parser.parse_args()

    from transformers import AutoProcessor

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        make_synthetic_data(tmp / "data", n=args.clips, seed=0, duration=args.seconds, fps=30,
                            width=args.width, height=args.height, splits=(1.0, 0.0, 0.0), noise=4.0,
                            tasks=("temporal_grounding",))
        made = time.perf_counter() - t0
        samples = load_jsonl(tmp / "data" / "train.jsonl").samples[: args.clips]
        processor = AutoProcessor.from_pretrained(make_tiny_model(tmp / "model"))
        builder = VideoInputBuilder(processor, VideoSampling(fps=2.0), cache=VideoCache())
        builder.prompts(samples[:1])  # warm up imports and codecs
        per_group, frames_group = _time_group(builder, samples, args.group, shared=True)
        per_rollout, frames_rollout = _time_group(builder, samples, args.group, shared=False)
        sampled = builder.video(samples[0])
        result = {
            "clips": len(samples),
            "clip": f"{args.seconds:.0f}s {args.width}x{args.height} 30fps",
            "group": args.group,
            "frames_per_video": int(sampled.frames.shape[0]),
            "frame_size": list(sampled.frames.shape[-2:]),
            "seconds_per_video_decode_once_per_group": per_group / len(samples),
            "seconds_per_video_decode_per_rollout": per_rollout / len(samples),
            "speedup_per_group_over_per_rollout": per_rollout / per_group,
            "source_frames_decoded_per_second": (
                len(samples) * args.group * sampled.info.num_frames / per_rollout
            ),
            "generation_seconds": made,
        }
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
