"""Named phase timers: `with timer("gen"): ...`, then `timer.metrics()` -> {"time/gen": s, ...}.

Phases are the steps of the algorithm (`gen`, `reward`, `old`, `ref`, `update_actor`, ...) and time
everything inside them. Code deep inside a phase (video decoding, the processor, the vision
encoder, prefill) reports *sub-phases* with `subphase("vision")`, without being handed the timer:
the trainer's timer is found through a context variable while one of its phases is open, and
`subphase` is a no-op otherwise (evaluation, tests, scripts). A sub-phase is logged as
`time/<phase>/<sub>`, e.g. `time/gen/vision`, and is exclusive: a sub-phase nested in another
(the vision encoder inside prefill) is subtracted from the outer one, so the sub-phases of a
phase add up to at most the phase. Names used by rlvid (docs/benchmarks.md):

    time/<phase>/decode        video decoding (cache misses)
    time/<phase>/processor     the HF processor (patchify, tokenisation)
    time/<phase>/vision        the vision encoder (get_video_features)
    time/gen/prefill           the prompt forward of generation (LLM part)
    time/gen/decode_tokens     token-by-token decoding
    time/<pass>/prefill        shared-prefix log-prob passes: the prompt forward (LLM part)
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

_ACTIVE: ContextVar[PhaseTimer | None] = ContextVar("rlvid_phase_timer", default=None)


@dataclass
class _Open:
    key: str
    start: float
    sub: bool
    children: float = 0.0


class PhaseTimer:
    """Accumulates wall time per named phase over one step (a phase may run several times).

    `clock` is wall time by default; benchmarks on a shared machine may pass `time.process_time`
    (CPU seconds of this process, with torch on one thread) to be less sensitive to other jobs.
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.clock = clock
        self._stack: list[_Open] = []
        self.failed_in: str | None = None  # the innermost phase an exception left (named in the error log)

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        token = _ACTIVE.set(self)
        self._stack.append(_Open(name, self.clock(), sub=False))
        try:
            yield
        except BaseException:
            self.failed_in = self.failed_in or name
            raise
        finally:
            opened = self._stack.pop()
            self.seconds[name] += self.clock() - opened.start
            _ACTIVE.reset(token)

    def open_phases(self) -> list[tuple[str, float]]:
        """(name, seconds so far) of the phases open now, outermost first (read by the step watchdog)."""
        now = self.clock()
        return [(o.key, now - o.start) for o in list(self._stack) if not o.sub]

    def enter_sub(self, name: str) -> _Open:
        """Open sub-phase `name` of the innermost open phase (pair with `exit_sub`; hooks need the split form)."""
        phase = next((o.key for o in reversed(self._stack) if not o.sub), "other")
        opened = _Open(f"{phase}/{name}", self.clock(), sub=True)
        self._stack.append(opened)
        return opened

    def exit_sub(self, opened: _Open) -> None:
        while self._stack and self._stack[-1] is not opened:  # an exception skipped inner exits
            self._stack.pop()
        if not self._stack:
            return
        self._stack.pop()
        elapsed = self.clock() - opened.start
        self.seconds[opened.key] += elapsed - opened.children
        if self._stack and self._stack[-1].sub:
            self._stack[-1].children += elapsed

    def metrics(self, prefix: str = "time") -> dict[str, float]:
        return {f"{prefix}/{k}": v for k, v in self.seconds.items()}

    def reset(self) -> None:
        self.seconds.clear()
        self._stack.clear()
        self.failed_in = None


def active_timer() -> PhaseTimer | None:
    """The timer whose phase is open in this context (None outside a trainer step)."""
    return _ACTIVE.get()


@contextmanager
def subphase(name: str) -> Iterator[None]:
    """Time the block as sub-phase `name` of the open phase; does nothing when no phase is open."""
    timer = _ACTIVE.get()
    if timer is None:
        yield
        return
    opened = timer.enter_sub(name)
    try:
        yield
    finally:
        timer.exit_sub(opened)
