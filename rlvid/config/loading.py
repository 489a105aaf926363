"""Load a recipe: YAML files composed through `base:`, then command-line overrides, into a typed Recipe.

    recipe = load_recipe("recipes/grpo_tg.yaml", ["trainer.lr=2e-6", "rollout.num_generations=4"])

Composition: a recipe file may start with `base: other.yaml` (or a list of files), paths
relative to the file itself, or packaged recipes by name (`base: base.yaml` from any folder).
Bases are merged first, in order and recursively, then the file on top, so the child wins. Mappings
merge key by key; a list (e.g. rewards.functions) is replaced as a whole. A base reached twice
through different files is fine; a cycle is an error.

Every layer is checked against the schema before it is merged (see `checking`), so an error
names the file or the override it came from. `save_recipe` writes every field, defaults
included, so `load_recipe(run_dir / "recipe.yaml")` rebuilds exactly the same Recipe. Relative paths
inside a file are relative to that file's folder, on the command line to the working folder (`recipe_paths`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from rlvid.config.checking import check_mapping, check_value, resolve_key_type
from rlvid.config.errors import RecipeError
from rlvid.config.recipe_paths import find_recipe, resolve_paths
from rlvid.config.schema import Recipe
from rlvid.config.validation import validate_recipe
from rlvid.redact import scrub, scrub_text, secret_values, watch_env

BASE_KEY = "base"


def load_recipe(path: str | os.PathLike, overrides: Sequence[str] = ()) -> Recipe:
    """Read, compose, override, type-check and validate a recipe."""
    path = find_recipe(path)  # a path, or a packaged recipe's name
    config = OmegaConf.structured(Recipe)
    for source, data in _layers(path, chain=()):
        check_mapping(data, Recipe, "", source)
        config = _merged(config, data, source)
    for override in overrides:
        _apply_override(config, override)
    recipe = _to_recipe(config, str(path))
    validate_recipe(recipe, source=str(path), base_dir=Path(path).resolve().parent)
    watch_env(recipe.logging.secret_env)  # their values are redacted from everything this process writes
    return recipe


def save_recipe(recipe: Recipe, path: str | os.PathLike) -> Path:
    """Write the fully resolved recipe (every field, defaults included) as YAML; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "# Fully resolved rlvid recipe: every setting of the run, defaults included.\n"
    text = OmegaConf.to_yaml(OmegaConf.structured(recipe))
    path.write_text(header + scrub_text(text, secret_values(recipe.logging.secret_env)))
    return path


def recipe_to_dict(recipe: Recipe) -> dict[str, Any]:
    """The recipe as plain nested dicts and lists (e.g. for wandb's run config), secret values redacted."""
    return scrub(OmegaConf.to_container(OmegaConf.structured(recipe), enum_to_str=True), recipe.logging.secret_env)


def _layers(path: Path, chain: tuple[Path, ...]) -> list[tuple[str, dict]]:
    """(source, data) of every file to merge, bases first; `chain` is the path of files leading here."""
    resolved = path.resolve()
    if resolved in chain:
        cycle = " -> ".join(str(p) for p in (*chain, resolved))
        raise RecipeError(f"{path}: recipe composition cycle: {cycle}")
    data = _read_yaml(path)
    bases = data.pop(BASE_KEY, [])
    resolve_paths(data, resolved.parent, str(path), plugins=bool(chain) and resolved.parent != chain[0].parent)
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise RecipeError(f"{path}: '{BASE_KEY}' must be a path or a list of paths, got {bases!r}")
    layers: list[tuple[str, dict]] = []
    for base in bases:
        layers += _layers(find_recipe(base, including=path), (*chain, resolved))
    return [*layers, (str(path), data)]


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise RecipeError(f"{path}: recipe file not found")
    try:
        loaded = OmegaConf.load(path)
    except Exception as e:  # YAML syntax errors come in several types
        raise RecipeError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(loaded, DictConfig):
        raise RecipeError(f"{path}: a recipe must be a mapping of sections, got a list")
    return OmegaConf.to_container(loaded, resolve=False)


def _apply_override(config: DictConfig, override: str, origin: str = "command line override") -> None:
    """Apply one `dotted.key=value` override (value parsed as YAML, like a recipe file's)."""
    source = f"{origin} {override!r}"
    key, sep, raw = override.partition("=")
    key = key.strip().replace("[", ".").replace("]", "")
    if not sep or not key:
        raise RecipeError(f"{source}: expected key=value, e.g. trainer.lr=2e-6")
    value = OmegaConf.to_container(OmegaConf.from_dotlist([f"value={raw}"]), resolve=False)["value"]
    value = _value_with_paths_resolved(key, value, source)
    expected = resolve_key_type(key.split("."), Recipe, source)
    check_value(value, expected, key, source)
    try:
        OmegaConf.update(config, key, value, merge=True)
    except OmegaConfBaseException as e:
        raise RecipeError(f"{source}: {_first_line(e)}") from None


def _value_with_paths_resolved(key: str, value: Any, source: str) -> Any:
    """An override's value with relative paths made absolute against the working folder."""
    *sections, leaf = key.split(".")
    layer = holder = {}
    for section in sections:
        holder = holder.setdefault(section, {})
    holder[leaf] = value
    resolve_paths(layer, Path.cwd(), source)
    return holder[leaf]


def _merged(config: DictConfig, data: dict, source: str) -> DictConfig:
    try:
        return OmegaConf.merge(config, data)
    except OmegaConfBaseException as e:  # the checks above should have caught it; keep the source anyway
        raise RecipeError(f"{source}: '{e.full_key}': {_first_line(e)}") from None


def _to_recipe(config: DictConfig, source: str) -> Recipe:
    try:
        return OmegaConf.to_object(config)
    except MissingMandatoryValue as e:
        raise RecipeError(f"{source}: '{e.full_key}' is required but not set") from None
    except OmegaConfBaseException as e:  # e.g. an interpolation that does not resolve
        raise RecipeError(f"{source}: '{e.full_key}': {_first_line(e)}") from None


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def override_recipe(recipe: Recipe, overrides: Sequence[str], source: str = "python",
                    base_dir: str | Path | None = None) -> Recipe:
    """A copy of `recipe` with `key=value` overrides applied, type-checked and validated as `load_recipe` does
    (the Python API builds recipes without a file: `source` names where the overrides came from)."""
    config = OmegaConf.structured(recipe)
    for override in overrides:
        _apply_override(config, override, f"{source} setting")
    out = _to_recipe(config, source)
    validate_recipe(out, source=source, base_dir=base_dir)
    watch_env(out.logging.secret_env)
    return out
