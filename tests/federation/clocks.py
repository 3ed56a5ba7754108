"""Clocks for federation tests that must control time exactly (rate limits, key expiry)."""

from __future__ import annotations

import threading

from node.clock import system_clock


class HeldClock:
    """Real time when made, then only where the test moves it (``clock.now += ms``)."""

    def __init__(self) -> None:
        self.now = system_clock()

    def __call__(self) -> int:
        return self.now


class TickingClock:
    """Real time, but never the same millisecond twice: a key rotated now is strictly
    after everything the old key signed. Called from the runtime's worker threads."""

    def __init__(self) -> None:
        self.last = 0
        self.lock = threading.Lock()

    def __call__(self) -> int:
        with self.lock:
            self.last = max(system_clock(), self.last + 1)
            return self.last
