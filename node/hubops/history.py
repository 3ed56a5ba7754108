"""Sync history over time from ``sync_runs``: per member and time bucket, the runs, items
applied and rejected, the largest lag and the failed runs.

Bounded however long the hub has run (the table keeps 8 days, ``remote_store.
RUN_RETENTION_MS``: 576,000 rows with 50 members pulled every minute): the first run of
the window is found by a binary search on the primary key (a run is recorded when it
ends, so start times grow with ids, give or take one run's duration; ``SLACK_MS`` covers
that), at most ``MAX_RUNS`` rows from there are read in id order, and they are
aggregated in SQL into a fixed number of buckets.
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
MAX_RUNS = 600_000
"""Runs read at most for one page (a week of 60 members pulled every minute)."""
SLACK_MS = 10 * MINUTE_MS


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


@dataclass
class History:
    peers: dict[str, PeerHistory]
    cut: int | None = None
    """When the run cap cut the window short: the start of the oldest run read."""


def window_bounds(now: int, window: str) -> tuple[int, int, int]:
    """(since, width, bucket count) of ``window`` ending at ``now``; buckets end on the
    width's boundary so that a bucket's label does not move between reloads."""
    length, width = WINDOWS[window]
    end = (now // width + 1) * width
    return end - length, width, length // width


def _started_from(session: Session, id_: int) -> int | None:
    return session.scalar(
        select(SyncRunRow.started).where(SyncRunRow.id >= id_).order_by(SyncRunRow.id).limit(1)
    )


def first_run_id(session: Session, since: int, max_runs: int) -> tuple[int, bool] | None:
    """The id to read from for runs started at ``since`` or later, and whether
    ``max_runs`` moved it later; None when no run is recorded."""
    low, high = session.execute(select(func.min(SyncRunRow.id), func.max(SyncRunRow.id))).one()
    if low is None or high is None:
        return None
    floor = max(low, high - max_runs + 1)
    lo, hi = floor, high + 1
    while lo < hi:  # the first id whose run started after since - SLACK_MS
        mid = (lo + hi) // 2
        started = _started_from(session, mid)
        if started is not None and started < since - SLACK_MS:
            lo = mid + 1
        else:
            hi = mid
    cut = lo == floor and floor > low and (_started_from(session, floor) or 0) > since
    return lo, cut


def sync_history(engine: Engine, now: int, window: str, *, max_runs: int = MAX_RUNS) -> History:
    since, width, count = window_bounds(now, window)
    out = History({})
    with Session(engine) as session:
        first = first_run_id(session, since, max_runs)
        if first is None:
            return out
        first_id, cut = first
        if cut:
            out.cut = _started_from(session, first_id)
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
            .where(SyncRunRow.id >= first_id, SyncRunRow.started >= since)
            # Bucket first: grouped by peer first, SQLite walks the peer index over
            # every run instead of reading the id range in order.
            .group_by(bucket, SyncRunRow.peer)
            .order_by(SyncRunRow.peer, bucket)
        )
        for peer, index, runs, applied, rejected, failed, lag in session.execute(stmt):
            history = out.peers.get(peer)
            if history is None:
                starts = range(since, since + count * width, width)
                history = out.peers[peer] = PeerHistory(
                    peer, [Bucket(start=s, width_ms=width) for s in starts]
                )
            i = int(index)
            if 0 <= i < count:
                b = history.buckets[i]
                b.runs, b.applied, b.rejected = int(runs), int(applied), int(rejected)
                b.failed, b.max_lag = int(failed), None if lag is None else int(lag)
    return out
