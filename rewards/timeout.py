"""A time limit on one reward call that really interrupts it (`rewards.timeout_s`).

A thread cannot be stopped, so the call runs on the calling (main) thread under a SIGALRM
interval timer: when it fires, `RewardTimeout` is raised inside the reward, also while it waits
in a blocking read (the interrupted system call ends and the handler's exception propagates).
Off the main thread, or with a limit of 0, the call runs without a limit.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class RewardTimeout(TimeoutError):
    """A reward call ran past `rewards.timeout_s`."""


def call_with_timeout(fn: Callable[..., T], timeout_s: float, what: str, *args: Any, **kwargs: Any) -> T:
    """`fn(*args, **kwargs)`, interrupted with RewardTimeout(naming `what`) after `timeout_s` seconds."""
    if timeout_s <= 0 or threading.current_thread() is not threading.main_thread():
        return fn(*args, **kwargs)

    def expire(signum, frame):
        raise RewardTimeout(f"{what} did not return within rewards.timeout_s={timeout_s:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    outer = signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        return fn(*args, **kwargs)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer[0] > 0:  # an enclosing timer was running: give it back what is left of it
            signal.setitimer(signal.ITIMER_REAL, max(outer[0] - timeout_s, 1e-3), outer[1])
