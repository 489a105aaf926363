"""Named phase timers: `with timer("gen"): ...`, then `timer.metrics()` -> {"time/gen": s, ...}."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager


class PhaseTimer:
    """Accumulates wall time per named phase over one step (a phase may run several times)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - start

    def metrics(self, prefix: str = "time") -> dict[str, float]:
        return {f"{prefix}/{k}": v for k, v in self.seconds.items()}

    def reset(self) -> None:
        self.seconds.clear()
