"""The hf engine's decode phase (`gen/decode_tokens`): tokens per second with each KV-cache layout, side by side.

Same random model, same 2 prompts, G sampled completions each after the shared prefill, completions fixed at
`--new-tokens` (min_new_tokens), fp32. Rounds alternate the configurations (the first round is warm-up) and
each round reseeds the sampler identically for all of them, so the tokens must match: that is checked and
printed. Configurations (how the prefilled, G-times repeated cache is held while decoding):

- `concat`: transformers' `DynamicCache` as prefilled (each token `torch.cat`s the whole cache per layer);
- `reserved`: rlvid's default, `rlvid.policy.kv_buffer.reserve_decode_room` (room for the new tokens up front,
  each token written in place);
- `static`: transformers' `StaticCache` of prompt + new tokens (in-place writes, attention over the whole
  reserved length under a mask; what its `torch.compile` path needs);
- `static_compile` (not in the default set: its first call compiles for minutes): `static` with
  transformers' `CompileConfig` (inductor, mode "default"), which `generate` uses on CPU only when asked.

    OMP_NUM_THREADS=1 python scripts/bench_decode.py --preset mid --rounds 4
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch
from bench_vs_trl import grpo_rlvid_trainer, make_tiny_setup
from transformers import CompileConfig, StaticCache

import rlvid.policy.generate as generate_module
from rlvid.models.tiny import make_tiny_model
from rlvid.timing import PhaseTimer

RESERVE = generate_module.reserve_decode_room


def as_static(model):
    def convert(cache, room):
        static = StaticCache(config=model.config, max_cache_len=cache.get_seq_length() + room)
        for target, layer in zip(static.layers, cache.layers, strict=True):
            target.update(layer.keys, layer.values)
        return static
    return convert


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="mid", choices=["tiny", "mid"])
    ap.add_argument("--visual-tokens", type=int, default=70, choices=[70, 160, 640])
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=4, help="timed rounds (after one warm-up)")
    ap.add_argument("--clock", default="cpu", choices=["cpu", "wall"])
    ap.add_argument("--configs", nargs="+", default=["concat", "reserved", "static"],
                    choices=["concat", "reserved", "static", "static_compile"])
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    if args.clock == "cpu":
        torch.set_num_threads(1)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    grid_hw = {70: (14, 20), 160: (20, 32), 640: (40, 64)}[args.visual_tokens]
    root = Path(tempfile.mkdtemp(prefix="bench_decode_"))
    setup = make_tiny_setup(root, n=40)
    setup["model"] = make_tiny_model(root / f"model-{args.preset}", preset=args.preset)
    trainer = grpo_rlvid_trainer(setup, root, True, grid_hw[0] * grid_hw[1] * 14 * 14, args.group, 0.0,
                                 args.new_tokens)
    samples, model = trainer.train_samples[:2], trainer.policy.model
    layouts = {"concat": lambda cache, room: cache, "reserved": RESERVE, "static": as_static(model),
               "static_compile": as_static(model)}
    compile_config = CompileConfig(mode="default")
    compile_config._compile_all_devices = True  # transformers compiles on CPU only when told to
    seconds: dict[str, list[float]] = {c: [] for c in args.configs}
    tokens: dict[str, int] = {}
    print(f"decode phase, preset={args.preset} prompts=2 G={args.group} new tokens={args.new_tokens} (fixed) "
          f"{args.clock} clock, torch threads={torch.get_num_threads()}")
    for r in range(args.rounds + 1):
        sampled = {}
        for name in args.configs:
            generate_module.reserve_decode_room = layouts[name]
            model.generation_config.compile_config = compile_config if name == "static_compile" else None
            timer = PhaseTimer(clock=clock)
            torch.manual_seed(1000 + r)
            with timer("gen"):
                out = trainer.engine.generate(samples, args.group, trainer.sampling)
            generate_module.reserve_decode_room = RESERVE
            s = timer.metrics()["time/gen/decode_tokens"]
            sampled[name], tokens[name] = out.token_ids, sum(map(len, out.token_ids))
            if r:
                seconds[name].append(s)
            print(f"  round {r}{' (warm-up)' if not r else ''}: {name:<9} decode_tokens {s:7.3f} s  "
                  f"{tokens[name] / s:7.1f} tokens/s", flush=True)
        same = all(v == sampled[args.configs[0]] for v in sampled.values())
        print(f"  round {r}: same tokens in every configuration: {same}")
    base = statistics.median(seconds[args.configs[0]])
    print(f"  medians of {args.rounds} rounds:")
    for name, ts in seconds.items():
        m = statistics.median(ts)
        print(f"  {name:<9} decode_tokens {m:7.3f} s  {tokens[name] / m:7.1f} tokens/s  "
              f"time vs {args.configs[0]}: {m / base:.3f}x")


if __name__ == "__main__":
    main()
