"""Login throttling: at most ``NAME_LIMIT`` failed logins for one user name and
``ADDRESS_LIMIT`` from one client address within ``WINDOW_MS``; and, on its own, at
most ``NAME_LIMIT`` from each browser that signed in under that name before.

Every attempt is written to ``login_attempts`` *before* its password is checked, and
counted after that write has committed: of any number of concurrent guesses, at most
the limit see a count within it, so parallel requests cannot buy extra guesses. An
attempt over the limit deletes its own row again and gets no password check at all (no
oracle, and hammering does not push the lockout further out); one whose password was
right deletes the failures of its kind for its name (a success clears them); a wrong
one stays as the failure it was. Rows older than the window are pruned on the way.

A right password gives the browser a *device token* (a random cookie; the node keeps
its SHA-256 in ``login_devices``, tied to the name). Attempts that bring a token of
that name are counted per token and not with anyone else's, so a stranger who knows a
user name can pause sign-in under it only for browsers that never signed in with it
(the device cookies of OWASP's guidance on online guessing). A token is only ever given
for a right password, so it buys a guesser nothing; a new password forgets them all.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Engine, delete, func, select
from sqlalchemy.orm import Session

from node.storage.models import LoginAttemptRow, LoginDeviceRow
from node.ui.sessions import token_shaped
from node.web.client import counted_as

NAME_LIMIT = 5
ADDRESS_LIMIT = 20
WINDOW_MS = 15 * 60 * 1000
DEVICE_LIFETIME_MS = 180 * 24 * 3600 * 1000
DEVICES_PER_NAME = 20  # the newest are kept


@dataclass(frozen=True)
class Attempt:
    """A login attempt written down: ``allowed`` to check its password, or not before
    ``retry_at_ms``. ``device`` is the SHA-256 of the browser's device token when that
    token belongs to the name tried, else ""."""

    row_id: int
    allowed: bool
    retry_at_ms: int = 0
    device: str = ""


def name_key(name: str) -> str:
    """Names are counted case-blind, so 'Admin' and 'admin' share their failures."""
    return name[:64].casefold()[:64]


def address_key(address: str | None) -> str:
    return counted_as(address or "unknown")[:64]


def device_digest(token: str) -> str:
    """The SHA-256 of a device token shaped like ours, else "" (anything else a browser
    sends is no token at all)."""
    if not token_shaped(token):
        return ""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def begin_attempt(
    engine: Engine, name: str, address: str | None, *, now_ms: int, device_token: str = ""
) -> Attempt:
    """Write the attempt down and say whether its password may be checked."""
    who, where = name_key(name), address_key(address)
    since = now_ms - WINDOW_MS
    with Session(engine) as session, session.begin():
        session.execute(delete(LoginAttemptRow).where(LoginAttemptRow.at <= since))
        device = _known_device(session, who, device_digest(device_token), now_ms)
        row = LoginAttemptRow(name=who, address=where, at=now_ms, device=device)
        session.add(row)
        session.flush()
        row_id = row.id
    if device:
        limits = [(LoginAttemptRow.device == device, NAME_LIMIT)]
    else:
        limits = [
            ((LoginAttemptRow.name == who) & (LoginAttemptRow.device == ""), NAME_LIMIT),
            ((LoginAttemptRow.address == where) & (LoginAttemptRow.device == ""), ADDRESS_LIMIT),
        ]
    with Session(engine) as session, session.begin():
        if all(_count(session, which, since) <= limit for which, limit in limits):
            return Attempt(row_id, True, device=device)
        session.execute(delete(LoginAttemptRow).where(LoginAttemptRow.id == row_id))
        session.flush()
        retry = max(_free_at(session, which, since, limit) for which, limit in limits)
    return Attempt(row_id, False, max(retry, now_ms + 1000), device)


def withdraw(engine: Engine, attempt: Attempt) -> None:
    """Take back an attempt whose password was never checked (the checks were all busy):
    it is no failure."""
    with Session(engine) as session, session.begin():
        session.execute(delete(LoginAttemptRow).where(LoginAttemptRow.id == attempt.row_id))


def succeeded(engine: Engine, name: str, attempt: Attempt, *, now_ms: int) -> str:
    """The password was right: the failures of the attempt's kind for the name are
    forgiven (its browser's, or those of browsers without a token; an address's stay).
    Returns a new device token for a browser that has none for the name, else ""."""
    who = name_key(name)
    with Session(engine) as session, session.begin():
        mine = LoginAttemptRow.device == attempt.device
        session.execute(delete(LoginAttemptRow).where(LoginAttemptRow.name == who, mine))
        if attempt.device:
            return ""
        token = secrets.token_urlsafe(32)
        session.add(LoginDeviceRow(token_sha256=device_digest(token), name=who, created=now_ms))
        session.flush()
        _keep_newest_devices(session, who, now_ms)
    return token


def forget_devices(session: Session, name: str) -> None:
    """A new password: no browser keeps the standing the old one earned."""
    session.execute(delete(LoginDeviceRow).where(LoginDeviceRow.name == name_key(name)))


def _known_device(session: Session, who: str, digest: str, now_ms: int) -> str:
    if not digest:
        return ""
    row = session.get(LoginDeviceRow, digest)
    if row is None or row.name != who or now_ms - row.created > DEVICE_LIFETIME_MS:
        return ""
    return digest


def _keep_newest_devices(session: Session, who: str, now_ms: int) -> None:
    session.execute(
        delete(LoginDeviceRow).where(LoginDeviceRow.created < now_ms - DEVICE_LIFETIME_MS)
    )
    extra = session.scalars(
        select(LoginDeviceRow.token_sha256)
        .where(LoginDeviceRow.name == who)
        .order_by(LoginDeviceRow.created.desc(), LoginDeviceRow.token_sha256)
        .offset(DEVICES_PER_NAME)
    ).all()
    if extra:
        session.execute(delete(LoginDeviceRow).where(LoginDeviceRow.token_sha256.in_(extra)))


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
