"""Name -> function registries, so a recipe can pick an algorithm piece by name.

A new advantage estimator, KL estimator, policy loss, loss aggregation or DPO loss is one
decorated function; the trainer looks it up by the name written in the recipe:

    ADVANTAGE_ESTIMATORS = Registry("advantage estimator")

    @ADVANTAGE_ESTIMATORS.register("grpo")
    def grpo_advantages(...): ...

    ADVANTAGE_ESTIMATORS.get(recipe.trainer.advantage)
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Generic, TypeVar

F = TypeVar("F", bound=Callable)


class UnknownNameError(LookupError):
    """A name that no function was registered under; the message lists the known names."""


class Registry(Generic[F]):
    """A named collection of functions of one kind (e.g. "policy loss")."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, F] = {}

    def register(self, name: str) -> Callable[[F], F]:
        """Decorator registering a function under `name`; registering a name twice is an error."""

        def decorator(fn: F) -> F:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is already registered (by {self._items[name].__qualname__})")
            self._items[name] = fn
            return fn

        return decorator

    def get(self, name: str) -> F:
        """The function registered under `name`; an unknown name raises with the known names."""
        try:
            return self._items[name]
        except KeyError:
            close = difflib.get_close_matches(str(name), self._items, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise UnknownNameError(f"unknown {self.kind} {name!r}; known: {self.names()}.{hint}") from None

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"
