"""SIGTERM / SIGINT during training: finish the step, save, say how to resume, exit non-zero.

Schedulers send SIGTERM before preempting a job; Ctrl-C sends SIGINT. The first signal only sets
a flag (`StopRequest.requested`); the loop reads it after each step, saves a checkpoint and raises
`RunInterrupted`. A second signal exits at once (`os._exit`), for a user who will not wait.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from types import FrameType

HANDLED = (signal.SIGTERM, signal.SIGINT)


class RunInterrupted(SystemExit):
    """Raised after the checkpoint of an interrupted run is saved; the exit status is 128 + signal number."""


class StopRequest:
    """Context manager that turns SIGTERM/SIGINT into a flag while training (main thread only)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:  # second signal: the user will not wait for the save
            sys.stderr.write(f"\nrlvid: second {signal.Signals(signum).name}, exiting now without saving\n")
            sys.stderr.flush()
            os._exit(128 + signum)
        self.signum = signum
        sys.stderr.write(f"\nrlvid: {signal.Signals(signum).name} received: finishing this step, then saving "
                         "a checkpoint (send it again to exit at once)\n")
        sys.stderr.flush()

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in HANDLED:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
