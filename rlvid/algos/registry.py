"""Name -> function registries, so a recipe can pick an algorithm piece by name.

A new advantage estimator, KL estimator, policy loss, loss aggregation or DPO loss is one
decorated function; the trainer looks it up by the name written in the recipe:

    ADVANTAGE_ESTIMATORS = Registry("advantage estimator")

    @ADVANTAGE_ESTIMATORS.register("grpo")
    def grpo_advantages(...): ...

    ADVANTAGE_ESTIMATORS.get(recipe.trainer.advantage)

Users extend a registry without touching rlvid: a recipe may name `pkg.mod:fn` or
`./file.py:fn` (relative to the recipe's folder), or a name an installed package publishes in the
registry's entry-point group (`rlvid.plugins`).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

from rlvid.plugins import is_import_path, load_entry_point, load_import_path

F = TypeVar("F", bound=Callable)


class UnknownNameError(LookupError):
    """A name that no function was registered under; the message lists the known names."""


class Registry(Generic[F]):
    """A named collection of functions of one kind (e.g. "policy loss"), open to plugins."""

    def __init__(self, kind: str, entry_point_group: str | None = None) -> None:
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._items: dict[str, F] = {}
        self._aliases: dict[str, str] = {}
        self._plugins: dict[str, F] = {}  # import-path names loaded so far

    def register(self, name: str) -> Callable[[F], F]:
        """Decorator registering a function under `name`; registering a name twice is an error."""

        def decorator(fn: F) -> F:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is already registered (by {self._items[name].__qualname__})")
            self._items[name] = fn
            return fn

        return decorator

    def alias(self, alias: str, name: str) -> None:
        """Make `alias` another name of the registered `name` (e.g. a paper's name for what a mode computes)."""
        if alias in self._items or alias in self._aliases:
            raise ValueError(f"{self.kind} {alias!r} is already registered")
        self._aliases[alias] = name

    def canonical(self, name: str) -> str:
        """The registered name `name` stands for (itself unless it is an alias)."""
        return self._aliases.get(name, name)

    def get(self, name: str, base_dir: str | Path | None = None) -> F:
        """The function registered under `name` (or an alias), loaded from `pkg.mod:fn` / `./file.py:fn`, or
        published in the entry-point group; an unknown name raises with the known names and the closest one."""
        key = self.canonical(name)
        if key in self._items:
            return self._items[key]
        if is_import_path(name):
            if name not in self._plugins:  # loaded once; validation loads it relative to the recipe's folder
                self._plugins[name] = load_import_path(name, base_dir, self.kind)
            return self._plugins[name]
        found = load_entry_point(self.entry_point_group, name, self.kind) if self.entry_point_group else None
        if found is not None:
            return found
        close = difflib.get_close_matches(str(name), [*self._items, *self._aliases], n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UnknownNameError(f"unknown {self.kind} {name!r}; known: {self.names()}.{hint}")

    def problem(self, name: str, base_dir: str | Path | None = None) -> str | None:
        """Why `name` does not resolve, as a recipe validation message (None when it does)."""
        try:
            self.get(name, base_dir)
        except UnknownNameError:
            every = [*self.names(), *sorted(self._aliases)]
            close = difflib.get_close_matches(str(name), every, n=1)
            hint = f". Did you mean {close[0]!r}?" if close else ""
            return f"must be one of {every} (or a plugin: pkg.mod:fn, ./file.py:fn), got {name!r}{hint}"
        except ValueError as e:  # a plugin that does not load (rlvid.plugins.PluginError)
            return str(e)
        return None

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items or name in self._aliases

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"
