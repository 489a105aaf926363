"""`rlvid mdpo-pairs RECIPE [overrides] --n N --out DIR [--model PATH]`: the CLI glue (imports stay lazy)."""

from __future__ import annotations

import argparse


def add_mdpo_pairs_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("recipe")
    p.add_argument("overrides", nargs="*", help="dotlist overrides, e.g. mdpo.min_gap=0.1")
    p.add_argument("--n", type=int, default=None, help="outputs sampled per prompt (default: mdpo.num_samples)")
    p.add_argument("--out", default=None, help="pair folder (default: OUTPUT_DIR/pairs); a rerun resumes it")
    p.add_argument("--model", default=None, help="model that samples and gives reference log-probs "
                                                 "(default: model.path)")


def mdpo_pairs_command(args: argparse.Namespace) -> int:
    from rlvid.trainers.mdpo.build import run_mdpo_pairs

    out = run_mdpo_pairs(args.recipe, args.overrides, n=args.n, out=args.out, model=args.model)
    print(f"wrote M-DPO pairs to {out}")
    return 0
