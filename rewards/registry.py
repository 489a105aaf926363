"""Find a reward by the name a recipe gives it, and bind its options.

A name is one of:
- a builtin (`format`, `accuracy`, ...) or a name registered in-process with `@register_reward`;
- `package.module:function` or `./path/file.py:function`, loaded by `rlvid.plugins` (a relative
  path is looked up from the recipe's folder, then the working folder);
- a name published by an installed package in the entry-point group `rlvid.rewards`.
Every failure is a `RewardError` naming the reward.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from rewards.builtins import BUILTINS
from rewards.errors import RewardError
from rlvid.config.schema import RewardSpec
from rlvid.data.sample import Sample
from rlvid.plugins import PluginError, entry_point_names, is_import_path, load_entry_point, load_import_path

ENTRY_POINT_GROUP = "rlvid.rewards"
SPEC_KEYS = ("name", "weight", "kwargs", "label")
# What a builtin may read as a column: the Sample fields and what the trainer passes. A dataset's extra columns
# (`meta` keys, passed to user rewards as TRL does) never reach a builtin, so one cannot shadow a builtin's option.
BUILTIN_COLUMNS = frozenset(f.name for f in dataclasses.fields(Sample)) | {
    "prompts", "completion_ids", "completion_lengths", "trainer_state"}

RewardFn = Callable[..., Any]
_REGISTERED: dict[str, RewardFn] = {}


def register_reward(name: str | None = None, *, overwrite: bool = False) -> Callable[[RewardFn], RewardFn]:
    """Decorator: make a function available to recipes under `name` (default: its own name)."""

    def deco(fn: RewardFn) -> RewardFn:
        key = name or fn.__name__
        if not overwrite and (key in BUILTINS or key in _REGISTERED):
            raise RewardError(key, "a reward of this name is already registered (pass overwrite=True)")
        _REGISTERED[key] = fn
        return fn

    return deco


def available_rewards() -> dict[str, str]:
    """Every reward a recipe can name without an import path, with where it comes from."""
    out = {n: "builtin" for n in BUILTINS}
    out.update({n: "registered" for n in _REGISTERED})
    for name, value in entry_point_names(ENTRY_POINT_GROUP).items():
        out.setdefault(name, f"entry point {value}")
    return out


def resolve_reward(name: str, base_dir: str | Path | None = None) -> RewardFn:
    """The callable a reward name refers to (see the module docstring for the forms)."""
    if not isinstance(name, str) or not name:
        raise RewardError(str(name), "a reward name must be a non-empty string")
    try:
        if is_import_path(name):
            return load_import_path(name, base_dir, "reward")
        if name in _REGISTERED:
            return _REGISTERED[name]
        if name in BUILTINS:
            return BUILTINS[name]
        fn = load_entry_point(ENTRY_POINT_GROUP, name, "reward")
    except PluginError as e:
        raise RewardError(name, e.detail) from e
    if fn is None:
        raise RewardError(
            name,
            f"unknown reward; builtins: {sorted(BUILTINS)}, registered: {sorted(_REGISTERED)}, "
            f"entry points ({ENTRY_POINT_GROUP}): {sorted(entry_point_names(ENTRY_POINT_GROUP))}; "
            "or give 'package.module:function' or './file.py:function'",
        )
    if not callable(fn):
        raise RewardError(name, f"resolves to a {type(fn).__name__}, which is not callable")
    return fn


def _plain(value: Any) -> Any:
    """OmegaConf nodes as plain dicts and lists (recipes arrive as OmegaConf configs)."""
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def parse_reward_spec(raw: Any) -> RewardSpec:
    """A recipe entry as a `RewardSpec`: a mapping (or OmegaConf node, or the schema's dataclass) with keys
    name, weight, kwargs, label; or just a name. Bad entries raise `RewardError` naming the reward."""
    if dataclasses.is_dataclass(raw) and not isinstance(raw, type):
        raw = {f.name: getattr(raw, f.name) for f in dataclasses.fields(raw)}
    raw = _plain(raw)
    if isinstance(raw, str):
        return RewardSpec(raw)
    if not isinstance(raw, Mapping):
        raise RewardError(str(raw), f"a reward entry must be a mapping with keys {list(SPEC_KEYS)}")
    name = raw.get("name")
    unknown = sorted(set(raw) - set(SPEC_KEYS))
    if unknown:
        raise RewardError(str(name), f"unknown key(s) {unknown} in reward entry; allowed: {list(SPEC_KEYS)}")
    if not isinstance(name, str) or not name:
        raise RewardError(str(name), "a reward entry needs a 'name'")
    weight = raw.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
        raise RewardError(name, f"'weight' must be a finite number, got {weight!r}")
    kwargs = _plain(raw.get("kwargs") or {})
    if not isinstance(kwargs, Mapping):
        raise RewardError(name, f"'kwargs' must be a mapping, got {type(kwargs).__name__}")
    label = raw.get("label")
    if label is not None and (not isinstance(label, str) or not label):
        raise RewardError(name, f"'label' must be a non-empty string, got {label!r}")
    return RewardSpec(name, float(weight), dict(kwargs), label)


@dataclass
class BoundReward:
    """A resolved reward with its recipe options bound: call it like the reward itself."""

    label: str
    name: str
    weight: float
    fn: RewardFn
    accepts: frozenset[str] | None  # column names the function takes; None: all (it has **kwargs)
    options: frozenset[str] = frozenset()  # names bound from the recipe; a column never overrides them

    def __call__(self, completions: list[str], **columns: Any) -> Any:
        if self.accepts is not None or self.options:
            columns = {
                k: v for k, v in columns.items()
                if k not in self.options and (self.accepts is None or k in self.accepts)
            }
        return self.fn(completions=completions, **columns)


def _signature(fn: RewardFn) -> inspect.Signature | None:
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):
        return None


def build_reward(spec: RewardSpec | Mapping[str, Any] | str | RewardFn, base_dir: str | Path | None = None
                 ) -> BoundReward:
    """Resolve a spec's reward, check its options against the function, and bind them. A plain callable is
    taken as it is (weight 1, labelled with its name): how Python code hands rewards to a trainer."""
    if callable(spec) and not isinstance(spec, (str, RewardSpec)):
        return bind_reward(RewardSpec(getattr(spec, "__name__", "reward")), spec)
    spec = parse_reward_spec(spec)
    return bind_reward(spec, resolve_reward(spec.name, base_dir))


def bind_reward(spec: RewardSpec, fn: RewardFn) -> BoundReward:
    """Check `spec`'s options against `fn`'s signature and bind them."""
    label = spec.default_label()
    ours = fn in BUILTINS.values() or fn in _REGISTERED.values()
    sig = _signature(fn)
    accepts: frozenset[str] | None = None
    if sig is not None:
        params = sig.parameters
        var_kw = any(p.kind is p.VAR_KEYWORD for p in params.values())
        named = {k for k, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if "completions" not in named and not var_kw:
            raise RewardError(label, "a reward must take a 'completions' argument (fn(completions, **columns))")
        if "completions" in spec.kwargs:
            raise RewardError(label, "'completions' cannot be set in kwargs")
        if ours or not var_kw:
            bad = sorted(set(spec.kwargs) - named)
            if bad:
                options = sorted(k for k, p in params.items() if p.kind is p.KEYWORD_ONLY)
                raise RewardError(label, f"unknown option(s) {bad}; allowed: {options}")
        missing = sorted(
            k for k, p in params.items()
            if p.kind is p.KEYWORD_ONLY and p.default is p.empty and k not in spec.kwargs
        )
        if ours and missing:
            raise RewardError(label, f"missing required option(s) {missing} (set them under kwargs)")
        accepts = None if var_kw else frozenset(named)
        if fn in BUILTINS.values():
            accepts = frozenset(named) & BUILTIN_COLUMNS
    validate = getattr(fn, "validate_options", None)
    if callable(validate):
        try:
            validate(**spec.kwargs)
        except (TypeError, ValueError) as e:
            raise RewardError(label, str(e)) from e
    bound = functools.partial(fn, **spec.kwargs) if spec.kwargs else fn
    return BoundReward(label, spec.name, spec.weight, bound, accepts, frozenset(spec.kwargs))
