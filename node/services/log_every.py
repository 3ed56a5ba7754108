"""A log line now and then for something that may happen thousands of times a second (a
flood of refusals, a database away): counted, and told with the count at most once every
``every_s`` seconds, never a line per event."""

from __future__ import annotations

import time


class Every:
    """``note()`` counts one event; it returns the count since the last line when it is
    time for a line (then counting starts again), else None."""

    def __init__(self, every_s: float = 10.0) -> None:
        self.every_s = every_s
        self.count = 0
        self.logged = -every_s

    def note(self) -> int | None:
        self.count += 1
        now = time.monotonic()
        if now - self.logged < self.every_s:
            return None
        count, self.count, self.logged = self.count, 0, now
        return count
