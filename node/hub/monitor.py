"""Synchronisation as the hub operator sees it: per member state, lag, holdings, rejects,
keys, policy version, recent runs and matches (``/hub/status``, ``/metrics``, dashboard)."""

from __future__ import annotations

import time
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from node.hub.eoi_gate import dropped_by_sender
from node.services.sync_status import peer_statuses
from node.storage.models import (
    NoticeSentRow,
    PeerStateRow,
    QuarantineRow,
    RemoteListingRow,
    SyncRunRow,
)

if TYPE_CHECKING:
    from node.hub.loop_lag import LoopLagMonitor
    from node.runtime import NodeRuntime

RECENT_RUNS = 5
RECENT_REJECTS = 5


# Each member's policy version and oldest copy are one pass over every held summary: at a
# hub holding many (a pass of more than SLOW_PASS_S), a pass is reused for REUSE_S, so a
# dashboard or a monitor polling the status every few seconds does not rescan them each
# time. A small hub reads them afresh at every call.
SLOW_PASS_S = 0.05
REUSE_S = 10.0
_Aggregates = tuple[dict[str, int], dict[str, int]]
_last_pass: weakref.WeakKeyDictionary[Engine, tuple[float, _Aggregates]] = (
    weakref.WeakKeyDictionary()
)


def _held_aggregates(rt: NodeRuntime, session: Session) -> _Aggregates:
    """Each member's highest policy version and oldest copy (``received_at``) held."""
    reused = _last_pass.get(rt.engine)
    if reused is not None and time.monotonic() < reused[0] + REUSE_S:
        return reused[1]
    started = time.monotonic()
    versions: dict[str, int] = {}
    oldest: dict[str, int] = {}
    for origin, version, first in session.execute(
        select(
            RemoteListingRow.origin,
            func.max(RemoteListingRow.policy_version),
            func.min(RemoteListingRow.received_at),
        ).group_by(RemoteListingRow.origin)
    ):
        versions[origin] = version
        oldest[origin] = first
    done = time.monotonic()
    if done - started > SLOW_PASS_S:
        _last_pass[rt.engine] = (done, (versions, oldest))
    else:
        _last_pass.pop(rt.engine, None)
    return versions, oldest


def hub_status(rt: NodeRuntime, loop_lag: LoopLagMonitor | None = None) -> dict[str, Any]:
    now = rt.clock()
    peers = {p["peer"]: p for p in peer_statuses(rt)}
    members = {m.node_id: m for m in rt.directory.members()}
    out: list[dict[str, Any]] = []
    with Session(rt.engine) as session:
        rejected = dict(session.execute(select(PeerStateRow.peer, PeerStateRow.rejected)).all())
        policy_versions, oldest = _held_aggregates(rt, session)
        notices = dict(
            session.execute(
                select(NoticeSentRow.reader, func.count()).group_by(NoticeSentRow.reader)
            ).all()
        )
        for node_id in sorted(set(members) | set(peers)):
            member = members.get(node_id)
            peer = peers.get(node_id, {})
            runs = session.scalars(
                select(SyncRunRow)
                .where(SyncRunRow.peer == node_id)
                .order_by(SyncRunRow.id.desc())
                .limit(RECENT_RUNS)
            ).all()
            rejects = session.scalars(
                select(QuarantineRow)
                .where(QuarantineRow.origin == node_id)
                .order_by(QuarantineRow.id.desc())
                .limit(RECENT_REJECTS)
            ).all()
            expiries: list[int] = [
                int(k["valid_until"])
                for k in (member.keys.values() if member else [])
                if k.get("valid_until") is not None
            ]
            state = peer.get("state", "never synced")
            if member is not None and member.status == "suspended":
                state = "suspended"
            out.append(
                {
                    "node_id": node_id,
                    "country": member.country if member else None,
                    "name": member.name if member else None,
                    "groups": member.groups if member else [],
                    "status": member.status if member else "peer",
                    "state": state,
                    "last_success": peer.get("last_success"),
                    "last_success_age_ms": None
                    if peer.get("last_success") is None
                    else now - peer["last_success"],
                    "lag": peer.get("lag"),
                    "items_held": peer.get("held", 0),
                    "oldest_copy_age_ms": None
                    if oldest.get(node_id) is None
                    else now - oldest[node_id],
                    "failures": peer.get("failures", 0),
                    "last_error": peer.get("last_error"),
                    "rejected": int(rejected.get(node_id, 0)),
                    "recent_rejects": [
                        {"at": r.received_at, "code": r.code, "message": r.message} for r in rejects
                    ],
                    "key_expiry": min(expiries) if expiries else None,
                    "policy_version": policy_versions.get(node_id),
                    "matches": int(notices.get(node_id, 0)),
                    "recent_runs": [
                        {
                            "started": r.started,
                            "duration_ms": None if r.finished is None else r.finished - r.started,
                            "applied": r.applied,
                            "retracted": r.retracted,
                            "rejected": r.rejected,
                            "lag": r.lag,
                            "error": r.error,
                        }
                        for r in runs
                    ],
                }
            )
    status: dict[str, Any] = {
        "hub": rt.node_id,
        "now": now,
        "directory_version": rt.directory.version(),
        "sync_interval_ms": int(rt.config.sync_interval_seconds * 1000),
        "members": out,
        "totals": {
            "members": len(out),
            "items_held": sum(m["items_held"] for m in out),
            "rejected": sum(m["rejected"] for m in out),
            "matches": sum(m["matches"] for m in out),
        },
    }
    if loop_lag is not None:  # how late the event loop ran, over the last minute
        status["event_loop_lag"] = loop_lag.summary()
    return status


class HubCollector(Collector):
    """Prometheus metrics computed at scrape time from the hub's database."""

    def __init__(self, rt: NodeRuntime, loop_lag: LoopLagMonitor | None = None) -> None:
        self.rt = rt
        self.loop_lag = loop_lag

    def collect(self) -> Iterator[GaugeMetricFamily]:
        status = hub_status(self.rt)
        gauges = {
            "lag": GaugeMetricFamily(
                "cattc_member_lag_entries", "Feed entries behind", labels=["member"]
            ),
            "age": GaugeMetricFamily(
                "cattc_member_last_success_age_seconds",
                "Seconds since the last good sync",
                labels=["member"],
            ),
            "held": GaugeMetricFamily(
                "cattc_member_items_held", "Summaries held", labels=["member"]
            ),
            "rejected": GaugeMetricFamily(
                "cattc_member_rejected_items",
                "Items of the member refused, ever (quarantine keeps the newest)",
                labels=["member"],
            ),
            "duration": GaugeMetricFamily(
                "cattc_member_last_run_duration_seconds",
                "Duration of the last run",
                labels=["member"],
            ),
            "up": GaugeMetricFamily(
                "cattc_member_ok", "1 when the member's sync is ok", labels=["member", "state"]
            ),
            "eoi_dropped": GaugeMetricFamily(
                "cattc_member_eoi_dropped",
                "Expressions of interest from the member not passed on",
                labels=["member"],
            ),
        }
        with Session(self.rt.engine) as session:
            dropped = dropped_by_sender(session)
        for m in status["members"]:
            label = [m["node_id"]]
            if m["lag"] is not None:
                gauges["lag"].add_metric(label, m["lag"])
            if m["last_success_age_ms"] is not None:
                gauges["age"].add_metric(label, m["last_success_age_ms"] / 1000)
            gauges["held"].add_metric(label, m["items_held"])
            gauges["rejected"].add_metric(label, m["rejected"])
            runs = m["recent_runs"]
            if runs and runs[0]["duration_ms"] is not None:
                gauges["duration"].add_metric(label, runs[0]["duration_ms"] / 1000)
            gauges["up"].add_metric([m["node_id"], m["state"]], 1 if m["state"] == "ok" else 0)
            gauges["eoi_dropped"].add_metric(label, dropped.get(m["node_id"], 0))
        yield from gauges.values()
        if self.loop_lag is not None:
            lag = self.loop_lag.summary()
            gauge = GaugeMetricFamily(
                "cattc_event_loop_lag_seconds",
                "How late the event loop ran over the last minute",
                labels=["quantile"],
            )
            for quantile, key in (("0.5", "p50_ms"), ("0.99", "p99_ms"), ("1", "max_ms")):
                gauge.add_metric([quantile], lag[key] / 1000)
            yield gauge
