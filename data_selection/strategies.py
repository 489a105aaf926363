"""Offline selection strategies: per-sample stats in, the samples to keep (and their weights) out.

A strategy is one function registered by name (the `Registry` of rlvid.algos):

    @STRATEGIES.register("min_mean")
    def min_mean(stats: list[SampleStats], *, low: float = 0.2) -> list[str] | dict[str, float]:
        return [s.id for s in stats if s.mean >= low]

It returns the ids to keep (weight 1 each) or `{id: weight}` (a weight of 0 drops the sample).
A recipe names it in `selection.offline.strategy` (a registered name, `pkg.mod:fn` or
`./file.py:fn`, relative to the recipe's folder) with its options in `selection.offline.kwargs`.
A strategy that declares a `base_dir` parameter is given that folder (so it can name others).
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data_selection.stats import SampleStats
from rlvid.algos.registry import Registry
from rlvid.plugins import PluginError

StrategyFn = Callable[..., Sequence[str] | Mapping[str, float]]
STRATEGIES: Registry[StrategyFn] = Registry("selection strategy", entry_point_group="rlvid.selection_strategies")


class SelectionError(ValueError):
    """A strategy that cannot be found, called, or whose result cannot be used; names the strategy."""


@dataclass
class Selection:
    """What a strategy kept: id -> weight, in the order of the stats it was given."""

    strategy: str
    kwargs: dict[str, Any]
    weights: dict[str, float]

    @property
    def ids(self) -> list[str]:
        return list(self.weights)


def resolve_strategy(name: str, base_dir: str | Path | None = None) -> StrategyFn:
    """A registered strategy, `pkg.mod:fn` / `./file.py:fn`, or an entry point of group
    `rlvid.selection_strategies` (`rlvid.plugins`)."""
    try:
        return STRATEGIES.get(name, base_dir)
    except PluginError as e:
        raise SelectionError(str(e)) from e


def apply_strategy(stats: Sequence[SampleStats], name: str, kwargs: Mapping[str, Any] | None = None,
                   base_dir: str | Path | None = None) -> Selection:
    """Run a strategy on stats rows and check its result (known ids, no repeats, finite weights >= 0)."""
    kwargs = dict(kwargs or {})
    fn = resolve_strategy(name, base_dir)
    params = inspect.signature(fn).parameters
    options = [k for k, p in list(params.items())[1:]
               if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and k != "base_dir"]
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        bad = sorted(set(kwargs) - set(options))
        if bad:
            raise SelectionError(f"selection strategy {name!r}: unknown option(s) {bad}; allowed: {options}")
    missing = [k for k in options if params[k].default is inspect.Parameter.empty and k not in kwargs]
    if missing:
        raise SelectionError(f"selection strategy {name!r}: missing required option(s) {missing} (set them in kwargs)")
    if "base_dir" in params:
        kwargs["base_dir"] = base_dir
    stats = list(stats)
    result = fn(stats, **kwargs)
    kwargs.pop("base_dir", None)
    return Selection(name, kwargs, _as_weights(result, stats, name))


def _as_weights(result: Any, stats: list[SampleStats], name: str) -> dict[str, float]:
    order = {s.id: i for i, s in enumerate(stats)}
    if isinstance(result, Mapping):
        items = list(result.items())
    elif isinstance(result, (str, bytes)) or not isinstance(result, (Sequence, set, frozenset)):
        raise SelectionError(f"selection strategy {name!r} returned {type(result).__name__}; "
                             "expected a list of ids or a dict of id -> weight")
    else:
        ids = list(result)
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise SelectionError(f"selection strategy {name!r} returned id(s) {repeated[:3]} more than once")
        items = [(i, 1.0) for i in ids]
    unknown = [i for i, _ in items if i not in order]
    if unknown:
        raise SelectionError(f"selection strategy {name!r} returned unknown id(s) {unknown[:3]}")
    for i, w in items:
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
            raise SelectionError(f"selection strategy {name!r}: weight of {i!r} must be finite and >= 0, got {w!r}")
    return {i: float(w) for i, w in sorted(items, key=lambda item: order[item[0]]) if w > 0}


# ---------------------------------------------------------------- builtins


@STRATEGIES.register("none")
def keep_all(stats: list[SampleStats]) -> list[str]:
    """Every sample (the stats are still recorded and reported)."""
    return [s.id for s in stats]


@STRATEGIES.register("variance_threshold")
def variance_threshold(stats: list[SampleStats], *, threshold: float = 0.0) -> list[str]:
    """Samples whose reward variance is strictly above `threshold` (0 drops the zero-variance ones)."""
    return [s.id for s in stats if s.variance > threshold]


@STRATEGIES.register("variance_aware")
def variance_aware(stats: list[SampleStats], *, fraction: float = 0.5, min_variance: float = 0.0,
                   by: str = "task") -> list[str]:
    """The default: per `by` stratum (task), the top `fraction` by reward variance, never a sample whose
    variance is <= `min_variance` (k equal rewards give GRPO a zero advantage: Temporal-R1's point).

    Each stratum keeps ceil(fraction x its size) samples at most, highest variance first (ties keep
    data order), so a task mix keeps its proportions and a set the model always solves keeps none.
    """
    if not 0.0 < fraction <= 1.0:
        raise SelectionError(f"selection strategy 'variance_aware': fraction must be in (0, 1], got {fraction}")
    if min_variance < 0:
        raise SelectionError(f"selection strategy 'variance_aware': min_variance must be >= 0, got {min_variance}")
    known = [f.name for f in dataclasses.fields(SampleStats)]
    if by not in known:
        raise SelectionError(f"selection strategy 'variance_aware': by={by!r} is not a stats field; known: {known}")
    strata: dict[Any, list[int]] = {}
    for i, s in enumerate(stats):
        strata.setdefault(getattr(s, by), []).append(i)
    kept: set[int] = set()
    for members in strata.values():
        quota = math.ceil(fraction * len(members) - 1e-9)
        informative = [i for i in members if stats[i].variance > min_variance + 1e-12]
        kept.update(sorted(informative, key=lambda i: -stats[i].variance)[:quota])  # sorted() is stable
    return [stats[i].id for i in sorted(kept)]


@STRATEGIES.register("top_variance")
def top_variance(stats: list[SampleStats], *, n: int | None = None, fraction: float | None = None) -> list[str]:
    """The `n` highest-variance samples, or the top `fraction` (ceil(fraction x count)); ties keep data order."""
    if (n is None) == (fraction is None):
        raise SelectionError("selection strategy 'top_variance': give exactly one of n, fraction")
    if fraction is not None:
        if not 0.0 <= fraction <= 1.0:
            raise SelectionError(f"selection strategy 'top_variance': fraction must be in [0, 1], got {fraction}")
        n = math.ceil(fraction * len(stats) - 1e-9)
    if n < 0:
        raise SelectionError(f"selection strategy 'top_variance': n must be >= 0, got {n}")
    ranked = sorted(range(len(stats)), key=lambda i: -stats[i].variance)  # sorted() is stable
    return [stats[i].id for i in ranked[:n]]


@STRATEGIES.register("drop_extremes")
def drop_extremes(stats: list[SampleStats]) -> list[str]:
    """Drop the samples the model always passes or always fails: keep 0 < pass rate < 1."""
    return [s.id for s in stats if 0.0 < s.pass_rate < 1.0]


@STRATEGIES.register("difficulty_band")
def difficulty_band(stats: list[SampleStats], *, low: float = 0.0, high: float = 0.7, reward: str | None = None,
                    include_low: bool = False, include_high: bool = True) -> list[str]:
    """Samples whose mean reward lies in the band (low, high] (ends set by include_low / include_high).

    `reward` names one reward's mean (its label, e.g. `temporal_iou` for "mean IoU in (0, 0.7]")
    instead of the total's; samples that reward never applied to are dropped.
    """
    kept = []
    for s in stats:
        value = s.mean if reward is None else s.reward_means.get(reward)
        if value is None:
            continue
        above = value >= low if include_low else value > low
        below = value <= high if include_high else value < high
        if above and below:
            kept.append(s.id)
    return kept


@STRATEGIES.register("variance_weights")
def variance_weights(stats: list[SampleStats], *, power: float = 1.0, floor: float = 0.0) -> dict[str, float]:
    """A sampling weight per sample, variance ** power + floor, scaled to mean 1 over the kept samples.

    With floor 0 the zero-variance samples get weight 0 and are dropped; power 0.5 weighs by the
    standard deviation. Train on them with `data_selection.sampler.weighted_sampler`.
    """
    if power <= 0 or floor < 0:
        raise SelectionError(f"selection strategy 'variance_weights': need power > 0 and floor >= 0, "
                             f"got power={power}, floor={floor}")
    raw = {s.id: s.variance ** power + floor for s in stats}
    kept = {i: w for i, w in raw.items() if w > 0}
    scale = len(kept) / math.fsum(kept.values()) if kept else 0.0
    return {i: w * scale for i, w in kept.items()}


@STRATEGIES.register("stratified")
def stratified(stats: list[SampleStats], *, strategy: str, kwargs: Mapping[str, Any] | None = None,
               by: str = "task", balance: bool = False, base_dir: str | Path | None = None) -> dict[str, float]:
    """Run `strategy` within each stratum (samples sharing `by`, a stats field: task by default).

    Fraction and threshold rules then act per task; an `n` option (top_variance) is split over the
    strata in proportion to their sizes (largest remainder), so the mix keeps its proportions.
    With `balance`, strata are also cut to the smallest kept share (highest variance first), so
    the kept counts follow the original proportions whatever the inner rule kept.
    """
    kwargs = dict(kwargs or {})
    known = [f.name for f in dataclasses.fields(SampleStats)]
    if by not in known:
        raise SelectionError(f"selection strategy 'stratified': by={by!r} is not a stats field; known: {known}")
    strata: dict[Any, list[SampleStats]] = {}
    for s in stats:
        strata.setdefault(getattr(s, by), []).append(s)
    quotas = None
    if kwargs.get("n") is not None:
        quotas = largest_remainder(int(kwargs["n"]), [len(group) for group in strata.values()])
    kept: dict[Any, dict[str, float]] = {}
    for j, (key, group) in enumerate(strata.items()):
        inner = dict(kwargs, n=quotas[j]) if quotas is not None else kwargs
        kept[key] = apply_strategy(group, strategy, inner, base_dir).weights
    if balance and stats:
        share = min(len(kept[key]) / len(group) for key, group in strata.items())
        for key, group in strata.items():
            quota = min(len(kept[key]), round(share * len(group)))
            ranked = sorted((s for s in group if s.id in kept[key]), key=lambda s: -s.variance)
            chosen = {s.id for s in ranked[:quota]}
            kept[key] = {i: w for i, w in kept[key].items() if i in chosen}
    return {i: w for weights in kept.values() for i, w in weights.items()}


def largest_remainder(n: int, sizes: Sequence[int]) -> list[int]:
    """`n` split over groups in proportion to `sizes` (Hamilton's method; ties go to the earlier group)."""
    total = sum(sizes)
    if total == 0:
        return [0] * len(sizes)
    raw = [n * s / total for s in sizes]
    out = [math.floor(r) for r in raw]
    by_remainder = sorted(range(len(sizes)), key=lambda i: -(raw[i] - out[i]))
    for i in by_remainder[: n - sum(out)]:
        out[i] += 1
    return out
