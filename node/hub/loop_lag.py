"""How late the event loop runs: the measure of "never blocked".

A task sleeps ``INTERVAL_S`` again and again and records by how much each wake-up came
late: anything that holds the loop (or the GIL) for 200 ms shows as a 200 ms sample.
``summary()`` gives p50, p99 and the maximum over the last ``WINDOW_S`` seconds, for
``/hub/status`` and the hub's ``/metrics``.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

INTERVAL_S = 0.1
WINDOW_S = 60.0


def _quantile(ordered: list[float], q: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class LoopLagMonitor:
    """Samples of the loop's lateness, kept for the last ``window_s`` seconds."""

    def __init__(
        self,
        interval_s: float = INTERVAL_S,
        window_s: float = WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if interval_s <= 0 or window_s <= 0:
            raise ValueError("interval_s and window_s must be positive")
        self.interval_s = interval_s
        self.window_s = window_s
        self.clock = clock
        self._samples: deque[tuple[float, float]] = deque()

    def record(self, at: float, lag_s: float) -> None:
        self._samples.append((at, max(0.0, lag_s)))
        while self._samples and self._samples[0][0] < at - self.window_s:
            self._samples.popleft()

    async def run(self) -> None:
        """Sample until cancelled."""
        while True:
            start = self.clock()
            await asyncio.sleep(self.interval_s)
            end = self.clock()
            self.record(end, end - start - self.interval_s)

    def summary(self) -> dict[str, float | int]:
        """p50, p99 and max of the lateness in ms over the window, and the sample count."""
        now = self.clock()
        lags = sorted(lag for at, lag in list(self._samples) if at >= now - self.window_s)
        return {
            "p50_ms": round(_quantile(lags, 0.50) * 1000, 2),
            "p99_ms": round(_quantile(lags, 0.99) * 1000, 2),
            "max_ms": round((lags[-1] if lags else 0.0) * 1000, 2),
            "samples": len(lags),
            "window_s": self.window_s,
        }
