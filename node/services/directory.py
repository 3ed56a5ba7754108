"""The member directory (DESIGN 6): kept by the hub operator, signed and versioned by the
hub, mirrored by every node, which accepts only a newer version with the pinned hub key.

Both sides keep the members in the ``members`` table: the hub as the source, a node as
the copy of the last directory it accepted.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Engine, delete, func, select
from sqlalchemy.orm import Session

from node.clock import Clock
from node.services.errors import Conflict, InvalidInput, KeyConflict, NotFound, ServiceError
from node.services.member_keys import DIRECTORY, Merged, merge_fetched, merge_operator
from node.storage.models import MemberRow, MetaRow
from protocol import PROTOCOL_VERSION
from protocol.b64 import b64url_decode, b64url_encode
from protocol.countries import ISO_COUNTRIES
from protocol.errors import ErrorCode
from protocol.hub_objects import MAX_MEMBERS, Directory, DirectoryMember, build
from protocol.keys import KeyStore, VerifyKeyInfo, split_key_name
from protocol.signing import SignatureError, sign_object, verify_object

logger = logging.getLogger(__name__)
VERSION_KEY = "directory_version"
DOC_KEY = "directory_document"
PIN_KEY = "directory_pinned_key"  # the hub key the held directory was taken under
STATUSES = ("active", "suspended")
_NODE_ID = re.compile(r"^[a-z][a-z0-9_]{1,31}\Z")
_BASE_URL = re.compile(r"^https?://[^\s]{1,250}\Z")
AuditHook = Callable[[Session, int], None]
"""Records a change in its own transaction (``node.ui.audit``), given the new version."""


class DirectoryRejected(ServiceError):
    code = ErrorCode.DIRECTORY_REJECTED


@dataclass
class Member:
    node_id: str
    country: str
    name: str
    base_url: str
    keys: dict[str, dict[str, Any]]
    groups: list[str] = field(default_factory=list)
    status: str = "active"
    # Where each key came from (node.services.member_keys.SOURCES); not on the wire.
    sources: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "node_id": self.node_id,
            "country": self.country,
            "name": self.name,
            "base_url": self.base_url,
            "keys": self.keys,
            "groups": sorted(self.groups),
            "status": self.status,
        }

    def verify_keys(self) -> dict[str, VerifyKeyInfo]:
        return keys_from_json(self.keys)


def keys_from_json(keys: dict[str, dict[str, Any]]) -> dict[str, VerifyKeyInfo]:
    return {
        name: VerifyKeyInfo(
            b64url_decode(str(info["key"])), info.get("valid_until"), info.get("expired_at")
        )
        for name, info in keys.items()
    }


def keys_from_identity(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, info in doc.get("verify_keys", {}).items():
        out[name] = {"key": info["key"], "valid_until": info.get("valid_until")}
    for name, info in doc.get("old_verify_keys", {}).items():
        out[name] = {"key": info["key"], "expired_at": info["expired_at"]}
    return out


def _log_key_swaps(held: Sequence[MemberRow], members: list[Any], me: str) -> None:
    """Say so when the hub's directory gives a known key name another key: the hub may
    (its operator, having checked with the center, or whoever holds the hub's key), and
    what that key signs then verifies. This node's own key, changed so, is an error for
    its operator to take up with the hub's."""
    known = {
        (row.node_id, name): info.get("key")
        for row in held
        for name, info in json.loads(row.keys).items()
    }
    for m in members:
        for name, info in m["keys"].items():
            before = known.get((m["node_id"], name))
            if before is not None and before != info.get("key"):
                mine = m["node_id"] == me
                log = logger.error if mine else logger.warning
                log(
                    "the hub's directory gives %s's key %s another value%s",
                    m["node_id"],
                    name,
                    ": this node's own key; ask the hub's operator why" if mine else "",
                )


def member_problem(member: Member) -> str | None:
    """Why ``member`` cannot go into the signed directory, or None.

    Every node trusts what the hub signs: a key that does not decode would make each call
    from that member fail with an internal error, on the hub and on every mirror.
    """
    if not _NODE_ID.match(member.node_id):
        return f"node id {member.node_id!r} must match [a-z][a-z0-9_]{{1,31}}"
    if member.country not in ISO_COUNTRIES:
        return f"country {member.country!r} is not an ISO 3166 alpha-2 code"
    if not _BASE_URL.match(member.base_url):
        return f"base URL {member.base_url!r} must be http:// or https://"
    for name, info in member.keys.items():
        try:
            split_key_name(name)
            if len(b64url_decode(str(info.get("key", "")))) != 32:
                raise ValueError(name)
        except ValueError:
            return f"key {name!r} must be ed25519:<id> with a base64url 32-byte Ed25519 key"
        for bound in ("valid_until", "expired_at"):
            value = info.get(bound)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                return f"key {name}: {bound} must be integer milliseconds"
    try:
        DirectoryMember.model_validate(member.to_json())
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        return f"{where}: {err['msg']}"
    return None


def _member(row: MemberRow) -> Member:
    return Member(
        row.node_id,
        row.country,
        row.name,
        row.base_url,
        json.loads(row.keys),
        json.loads(row.groups),
        row.status,
        json.loads(row.key_sources or "{}"),
    )


class DirectoryService:
    def __init__(self, engine: Engine, clock: Clock, node_id: str) -> None:
        self.engine = engine
        self.clock = clock
        self.node_id = node_id

    # -- reading ----------------------------------------------------------------------
    def members(self) -> list[Member]:
        with Session(self.engine) as session:
            return [
                _member(r) for r in session.scalars(select(MemberRow).order_by(MemberRow.node_id))
            ]

    def get(self, node_id: str) -> Member | None:
        with Session(self.engine) as session:
            row = session.get(MemberRow, node_id)
            return _member(row) if row else None

    def version(self) -> int:
        with Session(self.engine) as session:
            row = session.get(MetaRow, VERSION_KEY)
            return int(row.value) if row else 0

    # -- editing (hub) ----------------------------------------------------------------
    def upsert(self, member: Member, *, create: bool, audit: AuditHook | None = None) -> int:
        """Add (``create``) or change ``member``; the new directory version. ``audit``
        records the change in the same transaction, given the session and the version."""
        if member.status not in STATUSES:
            raise InvalidInput(f"status must be one of {', '.join(STATUSES)}")
        if not member.keys:
            raise InvalidInput("a member needs at least one key (--key or --fetch)")
        problem = member_problem(member)
        if problem:
            raise InvalidInput(problem)
        with Session(self.engine) as session, session.begin():
            row = session.get(MemberRow, member.node_id)
            if create and row is not None:
                raise Conflict(f"{member.node_id} is already a member; use 'directory update'")
            if not create and row is None:
                raise NotFound(f"{member.node_id} is not a member; use 'directory add'")
            others = select(func.count()).where(MemberRow.node_id != self.node_id)
            if row is None and (session.scalar(others) or 0) >= MAX_MEMBERS - 1:  # + the hub
                raise InvalidInput(f"the directory holds {MAX_MEMBERS} nodes at most")
            stored = json.loads(row.keys) if row is not None else {}
            stored_sources = json.loads(row.key_sources or "{}") if row is not None else {}
            keys, sources, conflicts = merge_operator(
                member.node_id, stored, stored_sources, member.keys, member.sources
            )
            if conflicts:
                raise KeyConflict("; ".join(conflicts))
            values = {
                "country": member.country,
                "name": member.name,
                "base_url": member.base_url,
                "keys": json.dumps(keys, sort_keys=True),
                "key_sources": json.dumps(sources, sort_keys=True),
                "groups": json.dumps(sorted(set(member.groups))),
                "status": member.status,
                "updated": self.clock(),
            }
            if row is None:
                session.add(MemberRow(node_id=member.node_id, **values))
            else:
                for key, value in values.items():
                    setattr(row, key, value)
            version = self._bump(session)
            if audit is not None:
                audit(session, version)
            return version

    def bump(self) -> int:
        """A new directory version with no member changed: the hub's own entry, which is
        made from its current keys, changed (``cattc keys rotate`` on the hub)."""
        with Session(self.engine) as session, session.begin():
            return self._bump(session)

    def set_status(self, node_id: str, status: str, *, audit: AuditHook | None = None) -> int:
        member = self.get(node_id)
        if member is None:
            raise NotFound(f"{node_id} is not a member")
        member.status = status
        return self.upsert(member, create=False, audit=audit)

    def _bump(self, session: Session) -> int:
        row = session.get(MetaRow, VERSION_KEY)
        version = int(row.value) + 1 if row else 1
        if row is None:
            session.add(MetaRow(key=VERSION_KEY, value=str(version)))
        else:
            row.value = str(version)
        return version

    def signed_document(self, keys: KeyStore, hub_entry: Member) -> dict[str, Any]:
        members = [m.to_json() for m in self.members() if m.node_id != self.node_id]
        members.append(hub_entry.to_json())
        doc = build(
            Directory,
            type="directory",
            v=PROTOCOL_VERSION,
            issuer=self.node_id,
            ts=self.clock(),
            version=self.version(),
            members=sorted(members, key=lambda m: m["node_id"]),
        )
        return sign_object(doc, self.node_id, keys.active)

    # -- mirroring (national nodes) ---------------------------------------------------
    def accept(self, doc: Any, *, hub_id: str, hub_key: bytes) -> bool:
        """Store ``doc`` if the pinned hub key signed it and it is newer; True if stored."""
        if not isinstance(doc, dict) or doc.get("type") != "directory":
            raise DirectoryRejected("not a directory document")
        if doc.get("issuer") != hub_id:
            raise DirectoryRejected(f"directory issued by {doc.get('issuer')!r}, not the hub")
        # Unchecked input until the signature holds: a null or a list here is refused too.
        all_sigs = doc.get("signatures")
        sigs = all_sigs.get(hub_id) if isinstance(all_sigs, dict) else None
        pinned = {name: VerifyKeyInfo(hub_key) for name in sigs} if isinstance(sigs, dict) else {}
        # Before the signature, which costs seconds on a large directory: a version no
        # newer than the one held under the same pinned key is left, signed or not.
        claimed, held = doc.get("version"), self._held_version(hub_key)
        if held is not None and isinstance(claimed, int) and not isinstance(claimed, bool):
            if claimed < held:
                raise DirectoryRejected(
                    f"directory version {claimed} is older than the held {held}"
                )
            if claimed == held:
                return False
        try:
            verify_object(doc, hub_id, pinned)
        except SignatureError as exc:
            raise DirectoryRejected(f"directory signature: {exc.message}") from exc
        version = doc.get("version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise DirectoryRejected("directory has no integer version")
        members = doc.get("members")
        if not isinstance(members, list):
            raise DirectoryRejected("directory has no member list")
        try:
            Directory.model_validate(doc)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise DirectoryRejected(f"directory: {where}: {err['msg']}") from exc
        with Session(self.engine) as session, session.begin():
            current = session.get(MetaRow, VERSION_KEY)
            pin_row = session.get(MetaRow, PIN_KEY)
            pin = b64url_encode(hub_key)
            # Held under another pinned key (the operator pinned a new one after the old
            # was stolen and signed a directory of version 2^53 - 1): any version replaces
            # it, or none ever could.
            if pin_row is not None and pin_row.value != pin:
                logger.warning(
                    "directory version %d taken in place of %s: the hub key pinned changed",
                    version,
                    current.value if current is not None else "none",
                )
            elif current is not None and version <= int(current.value):
                if version < int(current.value):
                    raise DirectoryRejected(
                        f"directory version {version} is older than the held {current.value}"
                    )
                return False
            _log_key_swaps(session.scalars(select(MemberRow)).all(), members, self.node_id)
            session.execute(delete(MemberRow))
            now = self.clock()
            for m in members:
                session.add(
                    MemberRow(
                        node_id=str(m["node_id"]),
                        country=str(m["country"]),
                        name=str(m.get("name", "")),
                        base_url=str(m["base_url"]),
                        keys=json.dumps(m["keys"], sort_keys=True),
                        key_sources=json.dumps(dict.fromkeys(m["keys"], DIRECTORY)),
                        groups=json.dumps(sorted(m.get("groups", []))),
                        status=str(m.get("status", "active")),
                        updated=now,
                    )
                )
            if current is None:
                session.add(MetaRow(key=VERSION_KEY, value=str(version)))
            else:
                current.value = str(version)
            if pin_row is None:
                session.add(MetaRow(key=PIN_KEY, value=pin))
            else:
                pin_row.value = pin
            doc_row = session.get(MetaRow, DOC_KEY)
            text = json.dumps(doc, sort_keys=True)
            if doc_row is None:
                session.add(MetaRow(key=DOC_KEY, value=text))
            else:
                doc_row.value = text
            return True

    def _held_version(self, hub_key: bytes) -> int | None:
        """The held directory's version if it was taken under ``hub_key``, else None."""
        with Session(self.engine) as session:
            current = session.get(MetaRow, VERSION_KEY)
            pin = session.get(MetaRow, PIN_KEY)
            if current is None or pin is None or pin.value != b64url_encode(hub_key):
                return None
            return int(current.value)

    def refresh_member_keys(
        self, node_id: str, identity: dict[str, Any], *, bump: bool = False
    ) -> Merged | None:
        """Learn from ``identity`` (verified, but self-signed: whoever answers at the
        member's URL signed it) what it may add: new key names and shorter lives of known
        keys, never another key under a known name (``node.services.member_keys``).

        The hub (``bump=True``) publishes a change as a new directory version; a node
        only updates its mirror, which the hub's next directory replaces.
        """
        with Session(self.engine) as session, session.begin():
            row = session.get(MemberRow, node_id)
            if row is None:
                return None
            merged = merge_fetched(
                node_id, json.loads(row.keys), json.loads(row.key_sources or "{}"), identity
            )
            for why in merged.refused:
                logger.warning("identity of %s at %s: %s", node_id, row.base_url, why)
            if not merged.changed:
                return merged
            row.keys = json.dumps(merged.keys, sort_keys=True)
            row.key_sources = json.dumps(merged.sources, sort_keys=True)
            if bump:
                self._bump(session)
            return merged
