"""How sync stands, per peer, and re-verification of everything held."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from node.services.peers import PeerInfo, PinnedKeys, peer_info, pull_targets
from node.services.remote_store import RemoteStore
from node.storage.models import PeerStateRow, QuarantineRow
from protocol.canonical import parse_json
from protocol.signing import SignatureError, verify_object

if TYPE_CHECKING:
    from node.runtime import NodeRuntime

LAGGING_ENTRIES = 100


def peer_state_name(row: PeerStateRow | None, held: int, now: int, interval_ms: int) -> str:
    if row is None or row.last_attempt is None:
        return "never synced"
    if row.failures:
        stale = row.last_success is None or now - row.last_success > 3 * interval_ms
        if stale and held:
            return "stale"
        return "unreachable" if row.last_error and "unreachable" in row.last_error else "failing"
    lag = (row.head or 0) - (row.position or 0)
    return "lagging" if lag > LAGGING_ENTRIES else "ok"


def peer_statuses(rt: NodeRuntime) -> list[dict[str, Any]]:
    store = RemoteStore(rt.engine)
    held = store.counts_by_origin()
    now = rt.clock()
    interval = int(rt.config.sync_interval_seconds * 1000)
    peers = {p.node_id for p in pull_targets(rt)}
    with Session(rt.engine) as session:
        rows = {r.peer: r for r in session.scalars(select(PeerStateRow))}
    out = []
    for peer in sorted(peers | set(rows)):
        row = rows.get(peer)
        lag = None if row is None or row.head is None else max(0, row.head - (row.position or 0))
        out.append(
            {
                "peer": peer,
                "state": peer_state_name(row, held.get(peer, 0), now, interval),
                "last_attempt": row.last_attempt if row else None,
                "last_success": row.last_success if row else None,
                "lag": lag,
                "held": held.get(peer, 0),
                "failures": row.failures if row else 0,
                "last_error": row.last_error if row else None,
            }
        )
    return out


def _item_listing(item: str) -> str | None:
    """The listing a quarantined item names, when its kept text still parses."""
    try:
        obj = parse_json(item)
    except ValueError:  # cut at 100 KB, never JSON, or nested too deep to parse
        return None
    if not isinstance(obj, dict):
        return None
    listing = obj.get("listing")
    found = listing.get("id") if isinstance(listing, dict) else obj.get("listing_id")
    return found if isinstance(found, str) else None


def quarantined(
    rt: NodeRuntime, peer: str | None, limit: int, *, with_items: bool = False
) -> list[dict[str, Any]]:
    """The newest ``limit`` items refused from ``peer`` (every peer: None), newest first:
    when, why, and the listing each names; ``with_items``: their kept text too."""
    stmt = select(QuarantineRow).order_by(QuarantineRow.id.desc()).limit(limit)
    if peer is not None:
        stmt = stmt.where(QuarantineRow.origin == peer)
    with Session(rt.engine) as session:
        rows = list(session.scalars(stmt))
    out = []
    for row in rows:
        entry: dict[str, Any] = {
            "peer": row.origin,
            "received_at": row.received_at,
            "code": row.code,
            "listing_id": _item_listing(row.item),
            "message": row.message,
        }
        if with_items:
            entry["item"] = row.item
        out.append(entry)
    return out


def verify_held(rt: NodeRuntime) -> dict[str, Any]:
    bad: list[dict[str, str]] = []
    infos: dict[str, PeerInfo | None] = {}
    total = 0
    for row in RemoteStore(rt.engine).iter_signed():
        total += 1
        if row.origin not in infos:
            infos[row.origin] = peer_info(rt, row.origin)
        info = infos[row.origin]
        try:
            if info is None:
                raise SignatureError("unknown_origin", "origin no longer known")
            obj = parse_json(row.signed_bytes)
            if not isinstance(obj, dict):
                raise SignatureError("schema_invalid", "stored bytes are not a signed object")
            verify_object(obj, row.origin, PinnedKeys(info))
            if obj["listing"]["id"] != row.listing_id or obj["listing"]["version"] != row.version:
                raise SignatureError("mismatch", "stored row does not match its signed bytes")
        except SignatureError as exc:
            bad.append({"origin": row.origin, "listing_id": row.listing_id, "reason": exc.message})
        except (ValueError, KeyError, TypeError) as exc:
            bad.append({"origin": row.origin, "listing_id": row.listing_id, "reason": str(exc)})
    return {"total": total, "ok": total - len(bad), "bad": bad}
