"""`rlvid select`: score k rollouts per training sample, select, and write the selected dataset and a report.

    rlvid select RECIPE [overrides...] --k 8 --out DIR          # generate (resumable), then select
    rlvid select --from-stats DIR/stats.parquet --strategy top_variance --kwarg fraction=0.5 --out DIR2

DIR holds: run.json (settings), shards/rank*.jsonl (raw per-process rows, for resuming),
stats.jsonl + stats.parquet (one row per sample), selected.jsonl (the kept Samples, with
meta.selection = {weight, mean, variance, pass_rate}), summary.json / summary.txt (the table) and
selection_hist.png. Run it under `torchrun` / `accelerate launch` to shard the rollouts.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from rlvid.redact import install_log_filter

if TYPE_CHECKING:  # the heavy imports wait until a command runs, so `rlvid --help` stays fast
    from data_selection.collect import BatchHook
    from data_selection.stats import SampleStats
    from data_selection.strategies import Selection

logger = logging.getLogger("data_selection")

SELECTED = "selected.jsonl"
HISTOGRAM = "selection_hist.png"


@dataclass
class SelectOutput:
    """What one `rlvid select` wrote (paths) and kept."""

    out_dir: Path
    selection: Selection
    stats: list[SampleStats]
    summary: dict[str, dict[str, Any]]


def select_from_recipe(recipe_path: str | Path, out: str | Path, overrides: Sequence[str] = (), *,
                       k: int | None = None, strategy: str | None = None, kwargs: dict[str, Any] | None = None,
                       batch_size: int | None = None, pass_threshold: float | None = None,
                       on_batch: BatchHook | None = None) -> SelectOutput | None:
    """Generate stats with the recipe's model, engine and rewards (resumable), then select and report.

    Options left None come from `selection.offline`; a `strategy` given here uses `kwargs` (not the
    recipe's). Returns the output on the main process, None on the others.
    """
    from data_selection.collect import collect_stats, process_state
    from data_selection.stats import write_stats
    from rewards import compose_rewards
    from rlvid.config import load_recipe
    from rlvid.config.loading import recipe_to_dict
    from rlvid.config.recipe_paths import find_recipe
    from rlvid.data.recipe_data import load_split, make_input_builder
    from rlvid.models.loading import load_policy, load_processor
    from rlvid.policy import Policy
    from rlvid.rollout import SamplingParams, make_engine

    recipe = load_recipe(recipe_path, list(overrides))
    if recipe.streaming.enabled:
        from rlvid.config import RecipeError

        raise RecipeError(f"{recipe_path}: streaming.enabled: `rlvid select` samples with the VL policy; it does not "
                          "run streaming recipes yet (docs/streaming.md)")
    recipe_dir = find_recipe(recipe_path).resolve().parent
    offline = recipe.selection.offline
    k = k if k is not None else offline.num_rollouts
    batch_size = batch_size if batch_size is not None else offline.batch_size
    pass_threshold = pass_threshold if pass_threshold is not None else offline.pass_threshold
    if k < 2:
        raise ValueError(f"k must be >= 2 (the variance of one rollout is always 0), got {k}")
    if not recipe.rewards.functions:
        raise ValueError("rlvid select needs rewards: the recipe's rewards.functions is empty")
    if strategy is None:
        strategy, kwargs = offline.strategy, dict(offline.kwargs)

    state = process_state()
    samples = load_split(recipe, "train")
    reward_set = compose_rewards(recipe.rewards.functions, on_error=recipe.rewards.on_error, base_dir=recipe_dir,
                                 timeout_s=recipe.rewards.timeout_s)
    processor = load_processor(recipe.model.path, recipe.model.trust_remote_code)
    model = load_policy(recipe.model, device=state.device).eval()
    engine = make_engine(recipe, Policy(model, make_input_builder(recipe, processor, base_dir=recipe_dir)))
    sampling = SamplingParams.from_recipe(recipe.rollout)
    plain = recipe_to_dict(recipe)
    settings = {"model": recipe.model.path, "engine": recipe.rollout.engine, "rewards": plain["rewards"],
                "sampling": asdict(sampling), "video": plain["data"]["video"], "seed": recipe.trainer.seed,
                "prompt_template": recipe.data.prompt_template, "reasoning": recipe.data.reasoning,
                "system_prompt": recipe.data.system_prompt}
    stats = collect_stats(samples, engine, reward_set, sampling, out, k=k, batch_size=batch_size,
                          seed=recipe.trainer.seed, pass_threshold=pass_threshold, settings=settings,
                          state=state, on_batch=on_batch)
    if not state.is_main_process:
        return None
    write_stats(stats, out)
    return finish_selection(stats, out, strategy, kwargs, recipe_dir, source=str(recipe_path))


def select_from_stats(stats_path: str | Path, out: str | Path, strategy: str, kwargs: dict[str, Any] | None = None,
                      base_dir: str | Path | None = None) -> SelectOutput:
    """Re-select from a stats file (.jsonl or .parquet) without generating anything."""
    from data_selection.stats import read_stats

    return finish_selection(read_stats(stats_path), out, strategy, kwargs, base_dir, source=str(stats_path))


def finish_selection(stats: list[SampleStats], out: str | Path, strategy: str, kwargs: dict[str, Any] | None,
                     base_dir: str | Path | None, source: str = "") -> SelectOutput:
    """Apply the strategy; write selected.jsonl, summary.json/.txt and the histogram; print the table."""
    from data_selection.report import format_summary, kept_line, plot_histograms, summarize
    from data_selection.stats import META_KEY
    from data_selection.strategies import apply_strategy
    from rlvid.data.atomic import write_text_atomic
    from rlvid.data.loaders import write_jsonl
    from rlvid.plugins import write_plugin_record

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    selection = apply_strategy(stats, strategy, kwargs, base_dir)
    by_id = {s.id: s for s in stats}
    kept = []
    for i, weight in selection.weights.items():
        sample = by_id[i].to_sample()
        s = by_id[i]
        sample.meta[META_KEY] = {"weight": weight, "mean": s.mean, "variance": s.variance, "pass_rate": s.pass_rate}
        kept.append(sample)
    write_jsonl(kept, out / SELECTED)
    if not kept:
        logger.warning("strategy %s %s kept none of the %d samples", strategy, selection.kwargs, len(stats))
    summary = summarize(stats, selection.ids)
    title = f"rlvid select: strategy {strategy} {json.dumps(selection.kwargs)} on {source}"
    table = format_summary(summary, title)
    write_text_atomic(out / "summary.txt", table + "\n")
    write_text_atomic(out / "summary.json", json.dumps(
        {"source": source, "strategy": strategy, "kwargs": selection.kwargs, "per_task": summary,
         "weights": selection.weights}, indent=2) + "\n")
    plot_histograms(stats, selection.ids, out / HISTOGRAM, title=f"{strategy}: {len(kept)} of {len(stats)} kept")
    write_plugin_record(out / "plugins.json")
    print(table)
    print(kept_line(stats, selection.ids, strategy))
    print(f"wrote {out / SELECTED} ({len(kept)} of {len(stats)} samples), {out / 'summary.txt'}, {out / HISTOGRAM}")
    return SelectOutput(out, selection, stats, summary)


def parse_kwargs(items: Sequence[str]) -> dict[str, Any]:
    """`key=value` strings -> dict, values read as YAML (`n=10` -> 10, `by=task`, `kwargs={n: 5}`)."""
    out = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--kwarg {item!r}: expected key=value")
        out[key.strip()] = yaml.safe_load(raw)
    return out


def run_select(args: argparse.Namespace) -> int:
    """The `rlvid select` subcommand (arguments from `add_select_arguments`)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    install_log_filter()  # secret values never reach a log line
    kwargs = parse_kwargs(args.kwarg or [])
    if kwargs and not args.strategy:
        raise SystemExit("rlvid select: --kwarg needs --strategy")
    if args.from_stats:
        if args.recipe:
            from rlvid.config import load_recipe

            offline = load_recipe(args.recipe, args.overrides).selection.offline
            strategy, kwargs = (args.strategy, kwargs) if args.strategy else (offline.strategy, dict(offline.kwargs))
            base_dir = Path(args.recipe).resolve().parent
        elif args.strategy:
            strategy, base_dir = args.strategy, None
        else:
            raise SystemExit("rlvid select --from-stats: give --strategy (or a recipe naming one)")
        select_from_stats(args.from_stats, args.out, strategy, kwargs, base_dir)
        return 0
    if not args.recipe:
        raise SystemExit("rlvid select: give a RECIPE (or --from-stats STATS)")
    select_from_recipe(args.recipe, args.out, args.overrides, k=args.k, strategy=args.strategy,
                       kwargs=kwargs if args.strategy else None, batch_size=args.batch_size,
                       pass_threshold=args.pass_threshold)
    return 0


def add_select_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of `rlvid select` (rlvid/cli.py adds the subparser)."""
    p.add_argument("recipe", nargs="?", default=None, help="recipe (model, rollout engine, rewards, data.train)")
    p.add_argument("overrides", nargs="*", help="dotlist overrides, e.g. data.max_samples=100")
    p.add_argument("--out", required=True, help="output folder (rerun with the same folder to resume)")
    p.add_argument("--k", type=int, default=None, help="rollouts per sample (default: selection.offline.num_rollouts)")
    p.add_argument("--from-stats", default=None, help="re-select from a stats .jsonl/.parquet; nothing is generated")
    p.add_argument("--strategy", default=None, help="strategy name, pkg.mod:fn or ./file.py:fn "
                                                    "(default: selection.offline.strategy)")
    p.add_argument("--kwarg", action="append", metavar="KEY=VALUE", help="a strategy option (repeatable)")
    p.add_argument("--batch-size", type=int, default=None, help="prompts per generate call per process")
    p.add_argument("--pass-threshold", type=float, default=None,
                   help="total reward a rollout needs to pass (default: half the maximum attainable)")
