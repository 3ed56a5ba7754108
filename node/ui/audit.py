"""The audit log: every change made in the console, the CLI or the admin API, with who
and when. ``record`` writes in the caller's transaction, so an entry commits with the
change it records (``record_on``: on a bulk import's connection); ``append`` is for
changes that have no transaction of their own to join. ``search`` reads it back for the
console's audit page."""

from __future__ import annotations

import getpass
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, func, insert, select
from sqlalchemy.orm import Session

from node.storage.models import AuditRow

ADMIN_TOKEN_ACTOR = "admin-token"
"""Who changed something through the admin API (a script holding the node's token)."""


def record(
    session: Session, *, at: int, actor: str, action: str, target: str, detail: str = ""
) -> None:
    """Add one entry in ``session``'s transaction: it commits with the change it records."""
    session.add(AuditRow(**_values(at, actor, action, target, detail)))


def listing_change(
    clock: Callable[[], int], actor: str, action: str
) -> Callable[[Session, dict[str, Any]], None]:
    """``record`` of a listing's change, for ``ListingService``'s ``also``: written in the
    change's own transaction (written after it, an entry was lost when the node stopped
    between the two)."""

    def write(session: Session, wire: dict[str, Any]) -> None:
        record(session, at=clock(), actor=actor, action=action, target=str(wire["id"]),
               detail=f"version {wire['version']}")  # fmt: skip

    return write


def record_on(
    connection: Connection, *, at: int, actor: str, action: str, target: str, detail: str = ""
) -> None:
    """``record`` on a connection inside its transaction (a bulk import's)."""
    connection.execute(insert(AuditRow), [_values(at, actor, action, target, detail)])


def _values(at: int, actor: str, action: str, target: str, detail: str) -> dict[str, Any]:
    return {
        "at": at,
        "actor": actor[:64],
        "action": action[:64],
        "target": target[:200],
        "detail": detail,
    }


def append(
    engine: Engine, *, at: int, actor: str, action: str, target: str, detail: str = ""
) -> None:
    """Add one entry in a transaction of its own."""
    with Session(engine) as session, session.begin():
        record(session, at=at, actor=actor, action=action, target=target, detail=detail)


def cli_actor() -> str:
    """``cli:<the operating system user>`` for changes made with ``cattc``."""
    try:
        who = getpass.getuser()
    except (OSError, KeyError):
        who = "unknown"
    return f"cli:{who}"[:64]


@dataclass(frozen=True)
class Entry:
    id: int
    at: int
    actor: str
    action: str
    target: str
    detail: str


@dataclass(frozen=True)
class Filters:
    """Which entries to show: exact actor and action, and ``since_ms <= at < until_ms``."""

    actor: str = ""
    action: str = ""
    since_ms: int | None = None
    until_ms: int | None = None

    def where(self) -> list[ColumnElement[bool]]:
        clauses: list[ColumnElement[bool]] = []
        if self.actor:
            clauses.append(AuditRow.actor == self.actor)
        if self.action:
            clauses.append(AuditRow.action == self.action)
        if self.since_ms is not None:
            clauses.append(AuditRow.at >= self.since_ms)
        if self.until_ms is not None:
            clauses.append(AuditRow.at < self.until_ms)
        return clauses


@dataclass(frozen=True)
class Page:
    entries: list[Entry]
    total: int
    actors: list[str]
    actions: list[str]


def search(engine: Engine, filters: Filters, *, offset: int, limit: int) -> Page:
    """Newest first: ``limit`` entries from ``offset``, the number that match, and every
    actor and action in the log (for the filters' choices)."""
    where = filters.where()
    with Session(engine) as session:
        total = session.scalar(select(func.count()).select_from(AuditRow).where(*where)) or 0
        rows = session.scalars(
            select(AuditRow)
            .where(*where)
            .order_by(AuditRow.at.desc(), AuditRow.id.desc())
            .offset(offset)
            .limit(limit)
        )
        entries = [Entry(r.id, r.at, r.actor, r.action, r.target, r.detail) for r in rows]
        actors = list(session.scalars(select(AuditRow.actor).distinct().order_by(AuditRow.actor)))
        actions = list(
            session.scalars(select(AuditRow.action).distinct().order_by(AuditRow.action))
        )
    return Page(entries, int(total), actors, actions)
