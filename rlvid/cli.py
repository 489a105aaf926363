"""`rlvid` command line: one subcommand per job; each delegates to the module that owns it (rlvid.app, for
the commands that train, evaluate or select; imports stay lazy so `rlvid --help` is fast)."""

from __future__ import annotations

import argparse
import sys

REAL_SIZE_PRESETS = ("3b", "7b", "4b", "8b")  # rlvid.models.real_shapes: Qwen2.5-VL-3B/7B, Qwen3-VL-4B/8B


def _make_tiny_model(args: argparse.Namespace) -> int:
    if args.preset in REAL_SIZE_PRESETS:
        from rlvid.models.real_shapes import write_real_shape_model as make_model
    else:
        from rlvid.models.tiny import make_tiny_model as make_model

    out = make_model(args.out, arch=args.arch, preset=args.preset, seed=args.seed)
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
    from rlvid.app.eval import run_eval

    return run_eval(args.recipe, checkpoint=args.checkpoint, overrides=args.overrides, split=args.split,
                    out=args.out, run=args.run)


def _export(args: argparse.Namespace) -> int:
    from rlvid.app.export import export_checkpoint

    print(f"wrote {export_checkpoint(args.checkpoint, args.out, merge_lora=args.merge_lora)}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from rlvid.app.train import run_sft, run_train

    (run_sft if args.command == "sft" else run_train)(args.recipe, args.overrides)
    return 0


def _mdpo_pairs(args: argparse.Namespace) -> int:
    from rlvid.app.mdpo import run_mdpo_pairs

    out = run_mdpo_pairs(args.recipe, args.overrides, n=args.n, out=args.out, model=args.model)
    print(f"wrote M-DPO pairs to {out}")
    return 0


def _plot(args: argparse.Namespace) -> int:
    from rlvid.plot import plot_run

    for path in plot_run(args.run_dir, args.out):
        print(f"wrote {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rlvid", description="RL post-training for video LLMs")
    parser.add_argument("--debug", action="store_true", help="on an error, also print the Python traceback "
                        "(or set RLVID_DEBUG=1); accepted anywhere on the command line")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("make-tiny-model", help="write a random HF model folder (offline): tiny, or a real size")
    p.add_argument("out", help="folder to write the model into")
    p.add_argument("--arch", default="qwen2_5_vl", choices=["qwen2_5_vl", "qwen3_vl"], help="model architecture")
    p.add_argument("--preset", default="tiny", choices=["tiny", "mid", *REAL_SIZE_PRESETS],
                   help="tiny | mid, or a published shape in bf16: 3b | 7b (qwen2_5_vl), 4b | 8b (qwen3_vl)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    p.set_defaults(func=_make_tiny_model)

    p = sub.add_parser("make-synthetic-data", help="write synthetic videos whose answers are in the pixels")
    p.add_argument("out", help="folder for the videos and train/val/test.jsonl")
    p.add_argument("--n", type=int, default=200, help="number of clips, all splits together")
    p.add_argument("--seed", type=int, default=0, help="seed of the clips and answers")
    p.add_argument("--fps", type=int, default=8, help="frames per second of the videos")
    p.add_argument("--width", type=int, default=128, help="frame width in pixels")
    p.add_argument("--height", type=int, default=96, help="frame height in pixels")
    p.add_argument("--duration", type=float, default=None, help="fixed clip length in seconds")
    p.add_argument("--tasks", default="", help="comma-separated subset of tasks")
    p.set_defaults(func=_make_synthetic_data)

    p = sub.add_parser("eval", help="evaluate a model on a recipe's validation or test split")
    p.add_argument("recipe", help="recipe YAML: a path, or a packaged recipe by name (e.g. quickstart)")
    p.add_argument("overrides", nargs="*", help="dotlist overrides, e.g. data.val=path.jsonl")
    p.add_argument("--checkpoint", action="append", default=None,
                   help="model folder or checkpoints/step-N to evaluate, repeatable; results go next to each "
                        "(default: the recipe's model)")
    p.add_argument("--run", default=None, help="evaluate every complete checkpoint and final/ of this run folder")
    p.add_argument("--split", default="val", choices=["val", "test"], help="which of the recipe's splits")
    p.add_argument("--out", default=None, help="folder for metrics.json and predictions.jsonl")
    p.set_defaults(func=_eval)

    for name, text in (("train", "train with the recipe's algorithm (GRPO, with its optional SFT warm start)"),
                       ("sft", "supervised fine-tuning on the target answers")):
        p = sub.add_parser(name, help=text)
        p.add_argument("recipe", help="recipe YAML: a path, or a packaged recipe by name (e.g. quickstart)")
        p.add_argument("overrides", nargs="*", help="dotlist overrides, e.g. trainer.lr=1e-5")
        p.set_defaults(func=_train)

    p = sub.add_parser("export", help="write a checkpoints/step-N folder as an HF model folder")
    p.add_argument("checkpoint", help="a run's checkpoints/step-N (or final/) folder")
    p.add_argument("out", help="folder to write the Hugging Face model into")
    p.add_argument("--merge-lora", action="store_true", help="LoRA: merge the adapters into the base weights "
                                                             "(default: write the adapter only, for peft)")
    p.set_defaults(func=_export)

    p = sub.add_parser("plot", help="PNG curves of a run folder's metrics.jsonl")
    p.add_argument("run_dir", help="a run folder (trainer.output_dir) holding metrics.jsonl")
    p.add_argument("--out", default=None, help="folder for the PNGs (default: RUN_DIR/plots)")
    p.set_defaults(func=_plot)

    p = sub.add_parser("mdpo-pairs", help="sample n outputs per prompt, score them with the metric, write M-DPO pairs")
    p.add_argument("recipe", help="recipe YAML: a path, or a packaged recipe by name (e.g. quickstart)")
    p.add_argument("overrides", nargs="*", help="dotlist overrides, e.g. mdpo.min_gap=0.1")
    p.add_argument("--n", type=int, default=None, help="outputs sampled per prompt (default: mdpo.num_samples)")
    p.add_argument("--out", default=None, help="pair folder (default: OUTPUT_DIR/pairs); a rerun resumes it")
    p.add_argument("--model", default=None, help="model that samples and gives reference log-probs "
                                                 "(default: model.path)")
    p.set_defaults(func=_mdpo_pairs)

    from rlvid.app.select import add_select_arguments, run_select

    p = sub.add_parser("select", help="score k rollouts per training sample and keep the informative ones")
    add_select_arguments(p)
    p.set_defaults(func=run_select)
    describe_every_command(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    from rlvid.app.user_errors import debug_requested, run_command

    argv = list(sys.argv[1:] if argv is None else argv)
    debug = debug_requested(argv)
    args = parse_args(build_parser(), [a for a in argv if a != "--debug"])
    return run_command(lambda: args.func(args), debug)


def parse_args(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Options and `key=value` overrides in any order: `eval R --split test data.test=x` as `eval R data.test=x
    --split test` (argparse alone stops taking positionals after the first option)."""
    args, extra = parser.parse_known_args(argv)
    if extra and hasattr(args, "overrides") and all("=" in a and not a.startswith("-") for a in extra):
        args.overrides = [*(args.overrides or []), *extra]
    elif extra:
        command_parser = next((a.choices[args.command] for a in parser._subparsers._group_actions), parser)
        command_parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def describe_every_command(parser: argparse.ArgumentParser) -> None:
    """`rlvid CMD --help` shows the command's description and every option's default."""
    for action in parser._subparsers._group_actions:  # the subcommands' parsers
        helps = {a.dest: a.help for a in action._choices_actions}
        for name, sub in action.choices.items():
            sub.description = sub.description or helps.get(name)
            sub.formatter_class = DefaultsHelpFormatter


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Each option's help ends with its default, unless it has none (None, False) or the text already says it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False or action.default in ("", []) \
                or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


if __name__ == "__main__":
    sys.exit(main())
