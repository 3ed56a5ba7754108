"""Login throttling: at most ``NAME_LIMIT`` failed logins for one user name and
``ADDRESS_LIMIT`` from one client address within ``WINDOW_MS``.

Every attempt is written to ``login_attempts`` *before* its password is checked, and
counted after that write has committed: of any number of concurrent guesses, at most
the limit see a count within it, so parallel requests cannot buy extra guesses. An
attempt over the limit deletes its own row again and gets no password check at all (no
oracle, and hammering does not push the lockout further out); one whose password was
right deletes its name's rows (a success clears the failures); a wrong one stays as
the failure it was. Rows older than the window are pruned on the way.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, Engine, delete, func, select
from sqlalchemy.orm import Session

from node.storage.models import LoginAttemptRow

NAME_LIMIT = 5
ADDRESS_LIMIT = 20
WINDOW_MS = 15 * 60 * 1000


@dataclass(frozen=True)
class Attempt:
    """A login attempt written down: ``allowed`` to check its password, or not before
    ``retry_at_ms``."""

    row_id: int
    allowed: bool
    retry_at_ms: int = 0


def name_key(name: str) -> str:
    """Names are counted case-blind, so 'Admin' and 'admin' share their failures."""
    return name[:64].casefold()[:64]


def address_key(address: str | None) -> str:
    return (address or "unknown")[:64]


def begin_attempt(engine: Engine, name: str, address: str | None, *, now_ms: int) -> Attempt:
    """Write the attempt down and say whether its password may be checked."""
    who, where = name_key(name), address_key(address)
    since = now_ms - WINDOW_MS
    with Session(engine) as session, session.begin():
        session.execute(delete(LoginAttemptRow).where(LoginAttemptRow.at <= since))
        row = LoginAttemptRow(name=who, address=where, at=now_ms)
        session.add(row)
        session.flush()
        row_id = row.id
    with Session(engine) as session, session.begin():
        by_name = _count(session, LoginAttemptRow.name == who, since)
        by_address = _count(session, LoginAttemptRow.address == where, since)
        if by_name <= NAME_LIMIT and by_address <= ADDRESS_LIMIT:
            return Attempt(row_id, True)
        session.execute(delete(LoginAttemptRow).where(LoginAttemptRow.id == row_id))
        session.flush()
        retry = max(
            _free_at(session, LoginAttemptRow.name == who, since, NAME_LIMIT),
            _free_at(session, LoginAttemptRow.address == where, since, ADDRESS_LIMIT),
        )
    return Attempt(row_id, False, max(retry, now_ms + 1000))


def succeeded(engine: Engine, name: str) -> None:
    """The password was right: the name's failures are forgiven (its address's stay)."""
    with Session(engine) as session, session.begin():
        session.execute(delete(LoginAttemptRow).where(LoginAttemptRow.name == name_key(name)))


def _count(session: Session, which: ColumnElement[bool], since: int) -> int:
    stmt = select(func.count()).select_from(LoginAttemptRow)
    return int(session.scalar(stmt.where(which, LoginAttemptRow.at > since)) or 0)


def _free_at(session: Session, which: ColumnElement[bool], since: int, limit: int) -> int:
    """When the failures counted by ``which`` fall below ``limit`` again (0 if they are)."""
    times = list(
        session.scalars(
            select(LoginAttemptRow.at)
            .where(which, LoginAttemptRow.at > since)
            .order_by(LoginAttemptRow.at)
        )
    )
    if len(times) < limit:
        return 0
    return times[len(times) - limit] + WINDOW_MS
