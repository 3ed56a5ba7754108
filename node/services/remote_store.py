"""The node's side of sync storage: remote copies with provenance, tombstones, quarantine,
per-peer cursors and run records (implements ``sync.interfaces.SyncStore``).

Ordering rule for one remote listing: a summary replaces the held copy only if its
(version, ts, policy version) is newer (the policy version tells two views of one listing
version apart when the owner's clock did not move between them); a retraction purges the
copy (delete, not hide) and leaves a tombstone, so an older summary arriving later is
refused as stale.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, delete, func, select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Session

from node.hub import search_store
from node.storage.models import (
    InboxRow,
    PeerStateRow,
    QuarantineRow,
    RemoteListingRow,
    RemoteTombstoneRow,
    SyncRunRow,
)
from sync.interfaces import (
    ApplyResult,
    PeerCursor,
    RejectedItem,
    RunRecord,
    VerifiedItem,
)

REOPENABLE = frozenset({"not_shared", "consent_revoked"})
LISTING_TYPES = frozenset({"listing", "retraction"})


def _drop(session: Session, row: object) -> None:
    """Delete ``row``; one added earlier in the same page is simply never written."""
    if sa_inspect(row).pending:
        session.expunge(row)
    else:
        session.delete(row)


def _listing_id(obj: dict[str, Any]) -> str:
    return str(obj["listing"]["id"] if obj["type"] == "listing" else obj["listing_id"])


def _quarantine(session: Session, origin: str, now: int, item: RejectedItem) -> None:
    try:
        text = json.dumps(item.obj, ensure_ascii=False, sort_keys=True)[:100_000]
    except (TypeError, ValueError):
        text = repr(item.obj)[:100_000]
    session.add(
        QuarantineRow(
            origin=origin, received_at=now, code=item.code, message=item.message[:2000], item=text
        )
    )


class RemoteStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def peer_cursor(self, peer: str) -> PeerCursor:
        with Session(self.engine) as session:
            row = session.get(PeerStateRow, peer)
            if row is None:
                return PeerCursor(None)
            return PeerCursor(row.cursor, row.failures, row.last_attempt)

    def reset_cursor(self, peer: str) -> None:
        with Session(self.engine) as session, session.begin():
            row = session.get(PeerStateRow, peer)
            if row is not None:
                row.cursor = None

    def apply_page(
        self,
        peer: str,
        items: Sequence[VerifiedItem],
        rejected: Sequence[RejectedItem],
        *,
        next_cursor: str,
        head: int,
        position: int | None,
        now: int,
    ) -> ApplyResult:
        result = ApplyResult()
        with Session(self.engine) as session, session.begin():
            state = session.get(PeerStateRow, peer, with_for_update=True)
            if state is None:
                state = PeerStateRow(peer=peer, failures=0)
                session.add(state)
            seq = int(
                session.scalar(
                    select(func.max(RemoteListingRow.feed_seq)).where(
                        RemoteListingRow.origin == peer
                    )
                )
                or 0
            )
            ids = [_listing_id(i.obj) for i in items if i.obj["type"] in LISTING_TYPES]
            held: dict[str, RemoteListingRow] = {}
            tombs: dict[str, RemoteTombstoneRow] = {}
            for start in range(0, len(ids), 500):  # two queries per page, not two per item
                chunk = ids[start : start + 500]
                held.update(
                    (r.listing_id, r)
                    for r in session.scalars(
                        select(RemoteListingRow).where(
                            RemoteListingRow.origin == peer, RemoteListingRow.listing_id.in_(chunk)
                        )
                    )
                )
                tombs.update(
                    (r.listing_id, r)
                    for r in session.scalars(
                        select(RemoteTombstoneRow).where(
                            RemoteTombstoneRow.origin == peer,
                            RemoteTombstoneRow.listing_id.in_(chunk),
                        )
                    )
                )
            searched: dict[str, dict[str, Any] | None] = {}  # public search, same transaction
            for item in items:
                seq += 1
                self._apply_one(session, peer, item, now, seq, result, held, tombs, searched)
            search_store.put_summaries(session, peer, searched)
            for bad in [*rejected, *result.rejected]:
                _quarantine(session, peer, now, bad)
            result.rejected = [*rejected, *result.rejected]
            state.cursor = next_cursor
            state.head = head
            state.position = position
        return result

    def _apply_one(
        self,
        session: Session,
        origin: str,
        item: VerifiedItem,
        now: int,
        seq: int,
        result: ApplyResult,
        held_rows: dict[str, RemoteListingRow],
        tombs: dict[str, RemoteTombstoneRow],
        searched: dict[str, dict[str, Any] | None],
    ) -> None:
        obj = item.obj
        if obj["type"] not in ("listing", "retraction"):
            session.add(
                InboxRow(
                    origin=origin,
                    type=obj["type"],
                    received_at=now,
                    obj=item.canonical.decode("utf-8"),
                )
            )
            result.applied += 1
            return
        lid = _listing_id(obj)
        version = obj["listing"]["version"] if obj["type"] == "listing" else obj["version"]
        held = held_rows.get(lid)
        tomb = tombs.get(lid)
        if obj["type"] == "retraction":
            if held is not None and version < held.version:
                result.rejected.append(
                    RejectedItem(
                        obj, "stale_version", f"retraction v{version} < held v{held.version}"
                    )
                )
                return
            if held is not None:
                _drop(session, held)
                del held_rows[lid]
                searched[lid] = None
                result.retracted += 1
            if tomb is None:
                tombs[lid] = RemoteTombstoneRow(
                    origin=origin,
                    listing_id=lid,
                    version=version,
                    reason=obj["reason"],
                    at=obj["ts"],
                )
                session.add(tombs[lid])
            elif (version, obj["ts"]) >= (tomb.version, tomb.at):
                tomb.version, tomb.reason, tomb.at = version, obj["reason"], obj["ts"]
            return
        ts = obj["ts"]
        order = (version, ts, obj["policy"]["version"])
        if held is not None and order <= (held.version, held.item_ts, held.policy_version):
            if order == (held.version, held.item_ts, held.policy_version):
                result.duplicates += 1
            else:
                result.rejected.append(
                    RejectedItem(
                        obj, "stale_version", f"v{version} is not newer than held v{held.version}"
                    )
                )
            return
        if tomb is not None and not (
            version > tomb.version
            or (version == tomb.version and tomb.reason in REOPENABLE and ts >= tomb.at)
        ):
            result.rejected.append(
                RejectedItem(
                    obj,
                    "stale_version",
                    f"v{version} was retracted ({tomb.reason}) at v{tomb.version}",
                )
            )
            return
        if tomb is not None:
            _drop(session, tomb)
            del tombs[lid]
        text = item.canonical.decode("utf-8")
        values: dict[str, Any] = {
            "category": obj["listing"]["category"],
            "version": version,
            "item_ts": ts,
            "key_name": item.key_name,
            "policy_version": obj["policy"]["version"],
            "received_at": now,
            "feed_seq": seq,
            "expires": obj["listing"]["expires"],
            "visibility": "public" if obj["listing"].get("public") else None,
            "signed_bytes": text,
            "bytes_sha256": hashlib.sha256(item.canonical).hexdigest(),
        }
        if held is None:
            held_rows[lid] = RemoteListingRow(origin=origin, listing_id=lid, **values)
            session.add(held_rows[lid])
        else:
            for key, value in values.items():
                setattr(held, key, value)
        searched[lid] = obj["listing"]
        result.applied += 1

    def record_run(self, run: RunRecord, *, success: bool) -> None:
        with Session(self.engine) as session, session.begin():
            lag = None
            if run.head is not None and run.position is not None:
                lag = max(0, run.head - run.position)
            session.add(
                SyncRunRow(
                    peer=run.peer,
                    started=run.started,
                    finished=run.finished,
                    applied=run.applied,
                    retracted=run.retracted,
                    rejected=run.rejected,
                    error=run.error,
                    head=run.head,
                    cursor=run.cursor,
                    lag=lag,
                )
            )
            state = session.get(PeerStateRow, run.peer)
            if state is None:
                state = PeerStateRow(peer=run.peer, failures=0)
                session.add(state)
            state.last_attempt = run.started
            if success:
                state.last_success = run.finished
                state.failures = 0
                state.last_error = None
            else:
                state.failures = (state.failures or 0) + 1
                state.last_error = run.error

    # -- reading ----------------------------------------------------------------------
    def held(self, origin: str | None = None) -> list[RemoteListingRow]:
        with Session(self.engine) as session:
            stmt = select(RemoteListingRow).order_by(
                RemoteListingRow.origin, RemoteListingRow.listing_id
            )
            if origin:
                stmt = stmt.where(RemoteListingRow.origin == origin)
            rows = list(session.scalars(stmt))
            session.expunge_all()
            return rows

    def counts_by_origin(self) -> dict[str, int]:
        with Session(self.engine) as session:
            stmt = select(RemoteListingRow.origin, func.count()).group_by(RemoteListingRow.origin)
            return {o: int(n) for o, n in session.execute(stmt)}

    def purge_origin(self, origin: str) -> int:
        with Session(self.engine) as session, session.begin():
            search_store.remove_owner(session, origin)
            res = session.execute(delete(RemoteListingRow).where(RemoteListingRow.origin == origin))
            return int(getattr(res, "rowcount", 0) or 0)
