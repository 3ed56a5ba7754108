"""Opaque, resumable feed cursors, bound to one owner and one reader.

A cursor is ``<base64url payload>.<base64url HMAC>``; the payload names the owner, the
reader and the change-log position. A cursor made for another reader or node, or altered
in any way, fails its MAC and is refused (400); one older than the retained history is
refused with a resync code (410).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from node.services.errors import ServiceError
from node.storage.models import MetaRow
from protocol.b64 import b64url_decode, b64url_encode

SECRET_KEY = "cursor_secret"
FLOOR_KEY = "feed_floor"


class BadCursor(ServiceError):
    status = 400
    code = "bad_cursor"


class CursorExpired(ServiceError):
    status = 410
    code = "cursor_expired_resync"


@dataclass(frozen=True)
class CursorCodec:
    secret: bytes
    node_id: str

    def encode(self, reader: str, seq: int) -> str:
        payload = b64url_encode(
            json.dumps({"n": self.node_id, "r": reader, "s": seq}, separators=(",", ":")).encode()
        )
        return f"{payload}.{self._mac(payload)}"

    def decode(self, reader: str, cursor: str) -> int:
        payload, _, mac = cursor.partition(".")
        if not payload or not mac or not hmac.compare_digest(mac, self._mac(payload)):
            raise BadCursor("unknown cursor: not issued by this node for this reader")
        try:
            data = json.loads(b64url_decode(payload))
            owner, who, seq = data["n"], data["r"], int(data["s"])
        except (ValueError, KeyError, TypeError) as exc:  # pragma: no cover - MAC-protected
            raise BadCursor("malformed cursor") from exc
        if owner != self.node_id or who != reader or seq < 0:
            raise BadCursor("foreign cursor: issued for another reader or node")
        return seq

    def _mac(self, payload: str) -> str:
        return b64url_encode(hmac.new(self.secret, payload.encode(), hashlib.sha256).digest()[:18])


def load_codec(engine: Engine, node_id: str) -> CursorCodec:
    """The node's cursor secret, created once and kept in the database."""
    with Session(engine) as session, session.begin():
        row = session.get(MetaRow, SECRET_KEY)
        if row is None:
            row = MetaRow(key=SECRET_KEY, value=secrets.token_hex(32))
            session.add(row)
        return CursorCodec(bytes.fromhex(row.value), node_id)


def history_floor(session: Session) -> int:
    value = session.scalar(select(MetaRow.value).where(MetaRow.key == FLOOR_KEY))
    return int(value) if value else 0
