"""A per-step watchdog: warn when a phase runs far past its recent median.

A run that stalls (a hung reward, a stuck decode, a collective waiting on a dead rank) should say
so in its log long before a timeout ends it. A daemon thread looks at the trainer's open phases
every `poll_s` seconds and logs one warning per phase and step when one has run longer than
`factor` times the median of its last `window` durations (and at least `min_s` seconds).
"""

from __future__ import annotations

import logging
import statistics
import threading
from collections import defaultdict, deque

from rlvid.timing import PhaseTimer

logger = logging.getLogger("rlvid.trainers")


class PhaseWatchdog:
    """Start with `with PhaseWatchdog(timer, factor):`; call `record(step, timer.seconds)` after each step."""

    def __init__(self, timer: PhaseTimer, factor: float, poll_s: float = 5.0, window: int = 20, min_s: float = 10.0):
        self.timer = timer
        self.factor = factor
        self.poll_s = poll_s
        self.min_s = min_s
        self.history: dict[str, deque[float]] = defaultdict(lambda: deque(maxlen=window))
        self.step = 0
        self.warned: set[tuple[int, str]] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def record(self, step: int, seconds: dict[str, float]) -> None:
        """Add a finished step's phase times to the history; `step` is the next step to run."""
        for name, s in seconds.items():
            if "/" not in name:
                self.history[name].append(s)
        self.step = step

    def overdue(self) -> list[tuple[str, float, float]]:
        """(phase, seconds so far, recent median) of each open phase past its limit."""
        out = []
        for name, elapsed in self.timer.open_phases():
            past = self.history.get(name)
            if not past or len(past) < 3:
                continue
            median = statistics.median(past)
            if elapsed >= max(self.factor * median, self.min_s):
                out.append((name, elapsed, median))
        return out

    def check(self) -> None:
        for name, elapsed, median in self.overdue():
            if (self.step, name) not in self.warned:
                self.warned.add((self.step, name))
                logger.warning("step %d: phase %r has run %.0f s, %.1fx its recent median of %.1f s; "
                               "a stalled reward, decode or process?", self.step + 1, name, elapsed,
                               elapsed / max(median, 1e-9), median)

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            self.check()

    def __enter__(self) -> PhaseWatchdog:
        if self.factor > 0:
            self._thread = threading.Thread(target=self._run, name="rlvid-watchdog", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.poll_s + 1)
