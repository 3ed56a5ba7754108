"""Opaque, resumable feed cursors, bound to one owner and one reader.

A cursor is ``<base64url payload>.<base64url HMAC>``; the payload names the owner, the
reader, the change-log position and the history floor when it was issued. A cursor made
for another reader or node, or altered in any way, fails its MAC and is refused (400);
one issued before history it still needs was compacted away is refused with a resync
code (410), and so is one whose change-log entry is no longer the one it was issued at
(the log was rewound by a restore). A cursor issued after that compaction is good even
below the floor: the reader is then walking the compacted log from the start (a
resync), and refusing it would make every resync longer than one page start over forever.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from node.services.errors import ServiceError
from node.storage.models import ChangeRow, MetaRow
from protocol.b64 import b64url_decode, b64url_encode
from protocol.errors import ErrorCode

SECRET_KEY = "cursor_secret"
FLOOR_KEY = "feed_floor"


class BadCursor(ServiceError):
    code = ErrorCode.BAD_CURSOR


class CursorExpired(ServiceError):
    code = ErrorCode.CURSOR_EXPIRED


@dataclass(frozen=True)
class CursorPosition:
    seq: int
    floor: int  # the history floor when the cursor was issued
    mark: str | None = None  # fingerprint of the change-log entry at ``seq``


def entry_mark(entry: ChangeRow | None) -> str | None:
    """A short fingerprint of one change-log entry. A cursor carries the mark of the
    entry it stops at; if that entry is gone or different, the log was rewound (the
    database restored from a backup) and what was written since could hide below the
    cursor."""
    if entry is None:
        return None
    text = f"{entry.seq}|{entry.listing_id}|{entry.version}|{entry.kind}|{entry.at}"
    return b64url_encode(hashlib.sha256(text.encode()).digest()[:9])


@dataclass(frozen=True)
class CursorCodec:
    secret: bytes
    node_id: str

    def encode(self, reader: str, seq: int, floor: int = 0, mark: str | None = None) -> str:
        data: dict[str, object] = {"n": self.node_id, "r": reader, "s": seq}
        if floor:
            data["f"] = floor
        if mark:
            data["h"] = mark
        payload = b64url_encode(json.dumps(data, separators=(",", ":")).encode())
        return f"{payload}.{self._mac(payload)}"

    def decode(self, reader: str, cursor: str) -> int:
        return self.position(reader, cursor).seq

    def position(self, reader: str, cursor: str) -> CursorPosition:
        payload, _, mac = cursor.partition(".")
        # Ours are ASCII; compare_digest refuses other str (and a reader may send any).
        if not (payload and mac and cursor.isascii()) or not hmac.compare_digest(
            mac, self._mac(payload)
        ):
            raise BadCursor("unknown cursor: not issued by this node for this reader")
        try:
            data = json.loads(b64url_decode(payload))
            owner, who, seq = data["n"], data["r"], int(data["s"])
            floor = int(data.get("f", 0))
            mark = data.get("h")
        except (ValueError, KeyError, TypeError) as exc:  # pragma: no cover - MAC-protected
            raise BadCursor("malformed cursor") from exc
        if owner != self.node_id or who != reader or seq < 0:
            raise BadCursor("foreign cursor: issued for another reader or node")
        return CursorPosition(seq, floor, mark if isinstance(mark, str) else None)

    def _mac(self, payload: str) -> str:
        return b64url_encode(hmac.new(self.secret, payload.encode(), hashlib.sha256).digest()[:18])


def load_codec(engine: Engine, node_id: str) -> CursorCodec:
    """The node's cursor secret, created once and kept in the database. The first feed
    requests may run side by side (threads, hub workers) and all try to create it: one
    wins, the others read the winner's."""
    try:
        with Session(engine) as session, session.begin():
            if session.get(MetaRow, SECRET_KEY) is None:
                session.add(MetaRow(key=SECRET_KEY, value=secrets.token_hex(32)))
    except IntegrityError:
        pass  # made by another request in the meantime
    with Session(engine) as session:
        return CursorCodec(bytes.fromhex(session.get_one(MetaRow, SECRET_KEY).value), node_id)


def history_floor(session: Session) -> int:
    value = session.scalar(select(MetaRow.value).where(MetaRow.key == FLOOR_KEY))
    return int(value) if value else 0
