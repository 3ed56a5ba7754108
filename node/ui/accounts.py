"""Staff accounts: argon2id password hashes, three roles, disabling (never deleting, so
the audit log keeps naming who did what).

Every change here is written to the audit log in its own transaction, and a change of
role or a disabling ends the user's sessions in that same transaction, so nobody keeps
rights they no longer have. The last enabled admin can be neither demoted nor disabled.
"""

from __future__ import annotations

from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from node.storage.models import StaffUserRow
from node.ui import audit
from node.ui.sessions import close_user_sessions_in
from node.ui.throttle import forget_devices

ROLES = ("viewer", "editor", "admin")
"""Viewers read; editors also change listings, rules and EoI answers; admins also users."""
ROLE_RANK = {role: rank for rank, role in enumerate(ROLES)}
_HASHER = PasswordHasher()
_DUMMY_HASH = _HASHER.hash("cattc-no-such-user")


class AccountError(ValueError):
    """A user name, role or password that cannot be used; the message says why."""


class NameTakenError(AccountError):
    """Another user has this name (letter case aside)."""


class LastAdminError(AccountError):
    """The change would leave the node without an enabled admin."""


@dataclass(frozen=True)
class StaffUser:
    id: int
    name: str
    role: str
    disabled: bool = False
    created: int = 0

    def may(self, role: str) -> bool:
        """Whether this user holds ``role`` or a higher one."""
        return ROLE_RANK[self.role] >= ROLE_RANK[role]


def _user(row: StaffUserRow) -> StaffUser:
    return StaffUser(row.id, row.name, row.role, row.disabled, row.created)


def check_new(name: str, password: str, role: str) -> None:
    if not (1 <= len(name) <= 64) or not all(c.isalnum() or c in "._-@" for c in name):
        raise AccountError("a user name is 1-64 letters, digits or . _ - @")
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}")
    if len(password) < 10:
        raise AccountError("a password has at least 10 characters")
    if len(password) > 1024:
        raise AccountError("a password has at most 1,024 characters")


def create_user(
    engine: Engine, name: str, password: str, role: str, *, now_ms: int, actor: str = "setup"
) -> StaffUser:
    """A new enabled user; ``actor`` (who added them) goes to the audit log."""
    check_new(name, password, role)
    password_hash = _HASHER.hash(password)
    taken = NameTakenError(f"a user named {name} exists already")
    try:
        with Session(engine) as session, session.begin():
            same = func.lower(StaffUserRow.name) == name.lower()  # 'Ada' is not a new 'ada'
            if session.scalar(select(StaffUserRow.id).where(same)) is not None:
                raise taken
            row = StaffUserRow(name=name, password_hash=password_hash, role=role, created=now_ms)
            session.add(row)
            session.flush()
            user = _user(row)
            audit.record(
                session, at=now_ms, actor=actor, action="user.create", target=name, detail=role
            )
    except IntegrityError:  # added at the same moment by someone else
        raise taken from None
    return user


def set_role(engine: Engine, name: str, role: str, *, actor: str, now_ms: int) -> StaffUser:
    """Give ``name`` the role ``role``; their sessions end (they sign in again)."""
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}")
    with Session(engine) as session, session.begin():
        row = _named(session, name)
        if row.role == role:
            return _user(row)
        if row.role == "admin" and not row.disabled:
            _keep_an_admin(session, row)
        old, row.role = row.role, role
        close_user_sessions_in(session, row.id)
        audit.record(
            session,
            at=now_ms,
            actor=actor,
            action="user.role",
            target=name,
            detail=f"{old} -> {role}",
        )
        return _user(row)


def set_disabled(
    engine: Engine, name: str, disabled: bool, *, actor: str, now_ms: int
) -> StaffUser:
    """Disable ``name`` (their sessions end, they cannot sign in) or enable them again."""
    with Session(engine) as session, session.begin():
        row = _named(session, name)
        if row.disabled == disabled:
            return _user(row)
        if disabled and row.role == "admin":
            _keep_an_admin(session, row)
        row.disabled = disabled
        if disabled:
            close_user_sessions_in(session, row.id)
        action = "user.disable" if disabled else "user.enable"
        audit.record(session, at=now_ms, actor=actor, action=action, target=name)
        return _user(row)


def set_password(engine: Engine, name: str, password: str, *, actor: str, now_ms: int) -> None:
    """Give ``name`` a new password; their sessions end."""
    check_new("x", password, ROLES[0])
    password_hash = _HASHER.hash(password)
    with Session(engine) as session, session.begin():
        row = _named(session, name)
        row.password_hash = password_hash
        close_user_sessions_in(session, row.id)
        forget_devices(session, name)
        audit.record(session, at=now_ms, actor=actor, action="user.password", target=name)


def _named(session: Session, name: str) -> StaffUserRow:
    row = session.scalar(
        select(StaffUserRow).where(StaffUserRow.name == name[:64]).with_for_update()
    )
    if row is None:
        raise AccountError(f"there is no user named {name}")
    return row


def _keep_an_admin(session: Session, leaving: StaffUserRow) -> None:
    others = session.scalars(
        select(StaffUserRow.id)
        .where(
            StaffUserRow.role == "admin",
            StaffUserRow.disabled.is_(False),
            StaffUserRow.id != leaving.id,
        )
        .with_for_update()
    ).first()
    if others is None:
        raise LastAdminError(
            f"{leaving.name} is the last enabled admin; make another user admin first"
        )


def authenticate(engine: Engine, name: str, password: str) -> StaffUser | None:
    """The enabled user ``name`` if ``password`` is theirs. Unknown names cost the same
    hash as known ones, so timing does not tell which names exist."""
    stored, user = credentials(engine, name)
    if not password_matches(stored, password):  # with the database connection handed back
        return None
    return user


def credentials(engine: Engine, name: str) -> tuple[str, StaffUser | None]:
    """The password hash to check for ``name`` (for an unknown name, a stand-in that
    costs the same to check) and the user it lets in (None when unknown or disabled)."""
    with Session(engine) as session:
        row = session.scalar(select(StaffUserRow).where(StaffUserRow.name == name[:64]))
        stored = row.password_hash if row is not None else _DUMMY_HASH
        user = _user(row) if row is not None else None
    return stored, user if user is not None and not user.disabled else None


def password_matches(stored: str, password: str) -> bool:
    """Whether ``password`` is the one ``stored`` was made of (argon2: most of a second)."""
    try:
        return bool(_HASHER.verify(stored, password))
    except (VerificationError, InvalidHashError):
        return False


def find_user(engine: Engine, name: str) -> StaffUser | None:
    with Session(engine) as session:
        row = session.scalar(select(StaffUserRow).where(StaffUserRow.name == name[:64]))
        return _user(row) if row is not None else None


def get_user(engine: Engine, user_id: int) -> StaffUser | None:
    with Session(engine) as session:
        row = session.get(StaffUserRow, user_id)
        return _user(row) if row is not None else None


def list_users(engine: Engine) -> list[StaffUser]:
    with Session(engine) as session:
        return [_user(r) for r in session.scalars(select(StaffUserRow).order_by(StaffUserRow.name))]
