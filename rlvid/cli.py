"""`rlvid` command line: one subcommand per job; each delegates to the module that owns it."""

from __future__ import annotations

import argparse
import sys


def _make_tiny_model(args: argparse.Namespace) -> int:
    from rlvid.models.tiny import make_tiny_model

    out = make_tiny_model(args.out, arch=args.arch, preset=args.preset, seed=args.seed)
    print(f"wrote {args.preset} {args.arch} model to {out}")
    return 0


def _make_synthetic_data(args: argparse.Namespace) -> int:
    from rlvid.data.synthetic import make_synthetic_data

    kwargs = {"n": args.n, "seed": args.seed, "fps": args.fps, "width": args.width, "height": args.height}
    if args.duration is not None:
        kwargs["duration"] = args.duration
    if args.tasks:
        kwargs["tasks"] = tuple(args.tasks.split(","))
    out = make_synthetic_data(args.out, **kwargs)
    print(f"wrote synthetic dataset to {out}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from rlvid.eval.cli_eval import run_eval

    return run_eval(args.recipe, checkpoint=args.checkpoint, overrides=args.overrides, split=args.split,
                    out=args.out)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rlvid", description="RL post-training for video LLMs")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("make-tiny-model", help="write a tiny random HF model folder (offline)")
    p.add_argument("out")
    p.add_argument("--arch", default="qwen2_5_vl", choices=["qwen2_5_vl", "qwen3_vl"])
    p.add_argument("--preset", default="tiny", choices=["tiny", "mid"])
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_make_tiny_model)

    p = sub.add_parser("make-synthetic-data", help="write synthetic videos whose answers are in the pixels")
    p.add_argument("out")
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fps", type=int, default=8)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--height", type=int, default=96)
    p.add_argument("--duration", type=float, default=None, help="fixed clip length in seconds")
    p.add_argument("--tasks", default="", help="comma-separated subset of tasks")
    p.set_defaults(func=_make_synthetic_data)

    p = sub.add_parser("eval", help="evaluate a model on a recipe's validation or test split")
    p.add_argument("recipe")
    p.add_argument("overrides", nargs="*", help="dotlist overrides, e.g. data.val=path.jsonl")
    p.add_argument("--checkpoint", default=None, help="model folder to evaluate (default: the recipe's model)")
    p.add_argument("--split", default="val", choices=["val", "test"])
    p.add_argument("--out", default=None, help="folder for metrics.json and predictions.jsonl")
    p.set_defaults(func=_eval)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
