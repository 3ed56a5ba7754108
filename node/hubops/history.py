"""Sync history over time from ``sync_runs``: per member and time bucket, the runs, items
applied and rejected, the largest lag and the failed runs. Aggregated in SQL (one query,
a fixed number of buckets per member, a row cap), so the page costs the same after a
year of runs as after a day.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from node.storage.models import SyncRunRow

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
WINDOWS: dict[str, tuple[int, int]] = {
    "24h": (24 * HOUR_MS, HOUR_MS),
    "7d": (7 * 24 * HOUR_MS, 6 * HOUR_MS),
}
"""Window name -> (length, bucket width), both in ms: 24 and 28 buckets."""
DEFAULT_WINDOW = "24h"
MAX_ROWS = 20_000


@dataclass
class Bucket:
    start: int  # ms
    runs: int = 0
    applied: int = 0
    rejected: int = 0
    failed: int = 0
    max_lag: int | None = None
    width_ms: int = HOUR_MS

    @property
    def per_minute(self) -> float | None:
        """Items applied per minute over the bucket (None: no run in it)."""
        return self.applied / (self.width_ms / MINUTE_MS) if self.runs else None

    @property
    def label(self) -> str:
        return datetime.fromtimestamp(self.start / 1000, UTC).strftime("%Y-%m-%d %H:%M")


@dataclass
class PeerHistory:
    peer: str
    buckets: list[Bucket] = field(default_factory=list)

    @property
    def runs(self) -> int:
        return sum(b.runs for b in self.buckets)

    @property
    def applied(self) -> int:
        return sum(b.applied for b in self.buckets)

    @property
    def rejected(self) -> int:
        return sum(b.rejected for b in self.buckets)

    @property
    def failed(self) -> int:
        return sum(b.failed for b in self.buckets)


def window_bounds(now: int, window: str) -> tuple[int, int, int]:
    """(since, width, bucket count) of ``window`` ending at ``now``; buckets end on the
    width's boundary so that a bucket's label does not move between reloads."""
    length, width = WINDOWS[window]
    end = (now // width + 1) * width
    return end - length, width, length // width


def sync_history(engine: Engine, now: int, window: str) -> dict[str, PeerHistory]:
    since, width, count = window_bounds(now, window)
    bucket = ((SyncRunRow.started - since) // width).label("bucket")
    stmt = (
        select(
            SyncRunRow.peer,
            bucket,
            func.count(),
            func.coalesce(func.sum(SyncRunRow.applied), 0),
            func.coalesce(func.sum(SyncRunRow.rejected), 0),
            func.count(SyncRunRow.error),
            func.max(SyncRunRow.lag),
        )
        .where(SyncRunRow.started >= since)
        .group_by(SyncRunRow.peer, bucket)
        .order_by(SyncRunRow.peer, bucket)
        .limit(MAX_ROWS)
    )
    out: dict[str, PeerHistory] = {}
    with Session(engine) as session:
        for peer, index, runs, applied, rejected, failed, lag in session.execute(stmt):
            history = out.get(peer)
            if history is None:
                starts = range(since, since + count * width, width)
                history = out[peer] = PeerHistory(
                    peer, [Bucket(start=s, width_ms=width) for s in starts]
                )
            i = int(index)
            if 0 <= i < count:
                b = history.buckets[i]
                b.runs, b.applied, b.rejected = int(runs), int(applied), int(rejected)
                b.failed, b.max_lag = int(failed), None if lag is None else int(lag)
    return out
