"""Where a recipe's relative paths point: one rule, applied when the recipe loads (recipes/README.md, "Paths").

- A relative path written in a recipe file is relative to THAT file's folder (a base's paths to the base's
  folder); one given on the command line (`data.test=x.jsonl`) is relative to the working folder. The loaded
  Recipe holds absolute paths, so the run folder's recipe.yaml means the same from anywhere.
- Paths are the values of PATH_KEYS (model, data files, the M-DPO pair folder, a resume checkpoint).
  `trainer.output_dir` is not: a run's outputs go under the folder you run from, so a packaged recipe never
  writes next to its own file.
- A plugin file (`./file.py:fn`, PLUGIN_KEYS) keeps its name as written (it names the run's settings, logs and
  metrics) and rlvid.plugins looks it up in the recipe's folder, then the working folder; only a plugin named in
  a base from another folder is made absolute here, so it is found next to that base.
- A model or dataset value that is not there as a local path and reads like a Hub name (`org/name`, no file
  suffix, not starting with `./`, `../`, `/` or `~`) stays a Hub name.
- `base:` names a file relative to the including file or, when no such file exists, a packaged recipe by name
  (`base: base.yaml`, `base: grpo_temporal_grounding`); the command's recipe argument likewise falls back from
  the working folder to the packaged recipes.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from rlvid.config.errors import RecipeError

PACKAGED_RECIPES = Path(__file__).resolve().parents[2] / "recipes"  # next to rlvid/ in a checkout or an install
HUB_NAME = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?(@[\w./-]+)?")  # org/name, optionally @split
FILE_SUFFIXES = (".jsonl", ".json", ".parquet", ".arrow", ".csv", ".yaml", ".yml", ".safetensors", ".bin")

# dotted keys whose values are local paths ("hub": or a Hub name when no such local path exists)
PATH_KEYS: dict[str, str] = {"model.path": "hub", "data.train": "hub", "data.val": "hub", "data.test": "hub",
                             "data.video_root": "local", "mdpo.pairs": "local", "trainer.resume": "local"}
# `path@split` of a data source (rlvid.data.sources): a split name after the last '@' is letters, digits, '_', '-',
# '.' (never a path separator)
DATA_SPLIT = re.compile(r"(?P<path>.+)@(?P<split>[A-Za-z0-9_.\-]+)")
NOT_PATHS = {"trainer.resume": ("none", "auto")}
# keys (and list-of-entries keys, by their `name`) that may name a plugin file `./file.py:fn`
PLUGIN_KEYS = ("trainer.policy_loss", "trainer.loss_agg", "trainer.advantage", "trainer.kl_estimator", "mdpo.loss",
               "selection.offline.strategy")
PLUGIN_LISTS = ("rewards.functions", "mdpo.metric", "hooks")

_written: dict[str, str] = {}  # absolute path -> "KEY: AS WRITTEN (in SOURCE)", for "not found" messages


def find_recipe(name: str | os.PathLike, including: Path | None = None) -> Path:
    """The recipe file `name` refers to: a path (relative to the including file's folder, else the working
    folder), or else a packaged recipe by name (`base`, `base.yaml`, `quickstart`)."""
    raw = Path(os.path.expanduser(str(name)))
    here = raw if raw.is_absolute() else (including.parent / raw if including else raw)
    if here.is_file():
        return Path(os.path.normpath(here))
    looked = [str(here.resolve())]
    if not raw.is_absolute() and len(raw.parts) == 1:
        for packaged in (PACKAGED_RECIPES / raw, PACKAGED_RECIPES / f"{raw}.yaml"):
            if packaged.is_file():
                return packaged
        looked.append(str(PACKAGED_RECIPES / (raw if raw.suffix else f"{raw}.yaml")))
        packaged = ", ".join(sorted(p.stem for p in PACKAGED_RECIPES.glob("*.yaml")))
        hint = f"; packaged recipes: {packaged}" if packaged else ""
    else:
        hint = ""
    where = f"{including}: base " if including else ""
    raise RecipeError(f"{where}{name}: recipe file not found (looked at {', '.join(looked)}){hint}")


def resolve_paths(data: dict, base_dir: Path, source: str, plugins: bool = False) -> dict:
    """`data` (one layer: a recipe file's mapping or an override as a mapping) with relative paths made absolute
    against `base_dir` (plugin files too when `plugins`: a base in another folder than the recipe's); the layer
    is changed in place and returned."""
    for key, kind in PATH_KEYS.items():
        parent, leaf = _slot(data, key)
        if parent is not None and leaf in parent:
            parent[leaf] = _resolve_any(parent[leaf], kind, base_dir, key, source)
    if not plugins:
        return data
    for key in PLUGIN_KEYS:
        parent, leaf = _slot(data, key)
        if parent is not None and isinstance(parent.get(leaf), str):
            parent[leaf] = _resolve_plugin(parent[leaf], base_dir)
    for key in PLUGIN_LISTS:
        parent, leaf = _slot(data, key)
        entries = parent.get(leaf) if parent is not None else None
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict) and isinstance(entry.get("name"), str):
                entry["name"] = _resolve_plugin(entry["name"], base_dir)
    return data


def check_model_path(path: str) -> None:
    """Refuse a local model folder that is not there, naming the recipe key as written and where it led; a Hub
    name passes (transformers reports those)."""
    if not path or os.path.isdir(os.path.expanduser(path)) or hub_like(path):
        return
    resolved = _absolute(path)
    said = _written.get(resolved, f"model folder {path}")
    raise RecipeError(f"{said} not found (resolved to {resolved})")


def hub_like(value: str) -> bool:
    """True when `value` reads like a Hub name (`name`, `org/name`, optionally `@split`): no file suffix, not
    starting with `.`, `/` or `~`."""
    return bool(HUB_NAME.fullmatch(value)) and not value.lower().endswith(FILE_SUFFIXES)


def _resolve_any(value: Any, kind: str, base_dir: Path, key: str, source: str) -> Any:
    if isinstance(value, list):
        return [_resolve_any(v, kind, base_dir, key, source) for v in value]
    if isinstance(value, dict) and isinstance(value.get("path"), str):  # {path: ..., weight: ...} entries
        return {**value, "path": _resolve_one(value["path"], kind, base_dir, key, source)}
    if isinstance(value, str):
        return _resolve_one(value, kind, base_dir, key, source)
    return value


def _resolve_one(value: str, kind: str, base_dir: Path, key: str, source: str) -> str:
    if not value or value in NOT_PATHS.get(key, ()) or "://" in value:
        return value
    split = DATA_SPLIT.fullmatch(value) if kind == "hub" else None
    if split:  # `folder@validation` / `org/name@train` (rlvid.data.sources): resolve the part before the split
        return _resolve_one(split["path"], kind, base_dir, key, source) + "@" + split["split"]
    path = Path(value).expanduser()
    if not path.is_absolute():
        if kind == "hub" and hub_like(value) and not (base_dir / path).exists():
            return value  # a Hub name
        path = base_dir / path
    resolved = _absolute(str(path))
    if resolved != value:
        _written.setdefault(resolved, f"{key}: {value} (in {source})")
    return resolved


def _absolute(path: str) -> str:
    return os.path.normpath(os.path.abspath(os.path.expanduser(path)))


def _resolve_plugin(name: str, base_dir: Path) -> str:
    """`./file.py:fn` (a module part ending in .py or holding a slash) with its file made absolute when it is
    there; a missing one stays as written, for rlvid.plugins to report with the places it looked."""
    target, sep, attr = name.rpartition(":")
    if not sep or not (target.endswith(".py") or "/" in target or "\\" in target):
        return name
    path = Path(target).expanduser()
    if path.is_absolute() or not (base_dir / path).is_file():
        return name
    return f"{_absolute(str(base_dir / path))}:{attr}"


def _slot(data: dict, dotted: str) -> tuple[dict | None, str]:
    """The mapping that holds the last part of `dotted` in `data` (None when a section is absent) and that part."""
    *sections, leaf = dotted.split(".")
    node: Any = data
    for section in sections:
        node = node.get(section) if isinstance(node, dict) else None
    return (node if isinstance(node, dict) else None), leaf
