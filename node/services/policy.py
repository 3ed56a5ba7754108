"""A node's sharing policy: saved versions (author, time, text, digest), one of them active.

Applying a new version appends a ``policy`` entry to the change log for every live
listing, so that every reader's feed re-evaluates them: narrowed views become retractions
at the next sync, widened ones new summaries.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, func, insert, select, update
from sqlalchemy.orm import Session

from node.clock import Clock
from node.services.errors import Conflict, NotFound, ServiceError
from node.storage.models import ChangeRow, ListingRow, PolicyVersionRow
from policies.compiled import CompiledPolicy, compile_policy
from policies.model import Policy, PolicyError
from policies.parse import parse_policy, policy_digest
from policies.write import default_policy_yaml
from protocol.errors import ErrorCode


class InvalidPolicy(ServiceError):
    code = ErrorCode.INVALID_POLICY

    def __init__(self, error: PolicyError) -> None:
        super().__init__("; ".join(str(i) for i in error.issues))
        self.issues = [str(i) for i in error.issues]


class StalePolicy(Conflict):
    """The active policy is no longer the one a change was prepared against."""


@dataclass(frozen=True)
class PolicyVersion:
    version: int
    author: str
    created: int
    text: str
    digest: str
    active: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "author": self.author,
            "created": self.created,
            "digest": self.digest,
            "active": self.active,
            "text": self.text,
        }


def _version(row: PolicyVersionRow) -> PolicyVersion:
    return PolicyVersion(row.version, row.author, row.created, row.text, row.digest, row.active)


class PolicyService:
    def __init__(self, engine: Engine, clock: Clock, hub_id: str = "cn") -> None:
        self.engine = engine
        self.clock = clock
        self.hub_id = hub_id
        self._lock = threading.Lock()
        self._cache: tuple[int, CompiledPolicy] | None = None

    def check(self, text: str) -> Policy:
        try:
            return parse_policy(text)
        except PolicyError as exc:
            raise InvalidPolicy(exc) from exc

    def active(self) -> PolicyVersion:
        with Session(self.engine) as session:
            row = session.scalar(select(PolicyVersionRow).where(PolicyVersionRow.active.is_(True)))
            if row is None:
                raise NotFound("no active policy; apply one with 'cattc policy apply'")
            return _version(row)

    def active_or_none(self) -> PolicyVersion | None:
        try:
            return self.active()
        except NotFound:
            return None

    def compiled(self) -> tuple[int, CompiledPolicy]:
        """The active policy, compiled once per version. Version 0 shares nothing."""
        current = self.active_or_none()
        if current is None:
            return 0, compile_policy(parse_policy("rules: []\n"))
        with self._lock:
            if self._cache is None or self._cache[0] != current.version:
                self._cache = (current.version, compile_policy(parse_policy(current.text)))
            return self._cache

    def history(self) -> list[PolicyVersion]:
        with Session(self.engine) as session:
            rows = session.scalars(select(PolicyVersionRow).order_by(PolicyVersionRow.version))
            return [_version(r) for r in rows]

    def apply(
        self,
        text: str,
        author: str,
        *,
        expect_digest: str | None = None,
        also: Callable[[Session, PolicyVersion], None] | None = None,
    ) -> PolicyVersion:
        """Save ``text`` as the new active version; an invalid text changes nothing.

        ``expect_digest``: the digest of the active text the change was prepared against
        ("" for none); another active text raises ``StalePolicy``. ``also`` runs in the
        same transaction once a new version is written (e.g. an audit-log entry).
        """
        self.check(text)
        now = self.clock()
        with Session(self.engine) as session, session.begin():
            last = session.scalar(select(func.max(PolicyVersionRow.version))) or 0
            active = select(PolicyVersionRow).where(PolicyVersionRow.active.is_(True))
            if expect_digest is not None:  # a concurrent apply waits, then sees it is stale
                active = active.with_for_update()
            current = session.scalar(active)
            if expect_digest is not None and (current.digest if current else "") != expect_digest:
                raise StalePolicy(
                    "the active policy changed since this change was prepared"
                    + (f" (now version {current.version} by {current.author})" if current else "")
                )
            if current is not None and current.text == text:
                return _version(current)
            session.execute(update(PolicyVersionRow).values(active=False))
            row = PolicyVersionRow(
                version=last + 1,
                author=author[:100],
                created=now,
                text=text,
                digest=policy_digest(text),
                active=True,
            )
            session.add(row)
            live = session.execute(
                select(ListingRow.id, ListingRow.version).where(ListingRow.withdrawn.is_(False))
            ).all()
            if live:
                session.execute(
                    insert(ChangeRow),
                    [
                        {"listing_id": lid, "version": v, "kind": "policy", "at": now}
                        for lid, v in live
                    ],
                )
            session.flush()
            if also is not None:
                also(session, _version(row))
            return _version(row)

    def install_default(self) -> PolicyVersion:
        return self.apply(default_policy_yaml(self.hub_id), author="cattc init (default)")
