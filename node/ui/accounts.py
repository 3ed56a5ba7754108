"""Staff accounts: argon2id password hashes, three roles, disabling (never deleting, so
the audit log keeps naming who did what)."""

from __future__ import annotations

from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from node.storage.models import StaffUserRow

ROLES = ("viewer", "editor", "admin")
"""Viewers read; editors also change listings, rules and EoI answers; admins also users."""
ROLE_RANK = {role: rank for rank, role in enumerate(ROLES)}
_HASHER = PasswordHasher()
_DUMMY_HASH = _HASHER.hash("cattc-no-such-user")


class AccountError(ValueError):
    """A user name, role or password that cannot be used; the message says why."""


@dataclass(frozen=True)
class StaffUser:
    id: int
    name: str
    role: str
    disabled: bool = False

    def may(self, role: str) -> bool:
        """Whether this user holds ``role`` or a higher one."""
        return ROLE_RANK[self.role] >= ROLE_RANK[role]


def _user(row: StaffUserRow) -> StaffUser:
    return StaffUser(row.id, row.name, row.role, row.disabled)


def check_new(name: str, password: str, role: str) -> None:
    if not (1 <= len(name) <= 64) or not all(c.isalnum() or c in "._-@" for c in name):
        raise AccountError("a user name is 1-64 letters, digits or . _ - @")
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}")
    if len(password) < 10:
        raise AccountError("a password has at least 10 characters")
    if len(password) > 1024:
        raise AccountError("a password has at most 1,024 characters")


def create_user(engine: Engine, name: str, password: str, role: str, *, now_ms: int) -> StaffUser:
    check_new(name, password, role)
    with Session(engine) as session, session.begin():
        if session.scalar(select(StaffUserRow).where(StaffUserRow.name == name)) is not None:
            raise AccountError(f"a user named {name!r} exists already")
        row = StaffUserRow(
            name=name, password_hash=_HASHER.hash(password), role=role, created=now_ms
        )
        session.add(row)
        session.flush()
        user = _user(row)
    return user


def authenticate(engine: Engine, name: str, password: str) -> StaffUser | None:
    """The enabled user ``name`` if ``password`` is theirs. Unknown names cost the same
    hash as known ones, so timing does not tell which names exist."""
    with Session(engine) as session:
        row = session.scalar(select(StaffUserRow).where(StaffUserRow.name == name[:64]))
        stored = row.password_hash if row is not None else _DUMMY_HASH
        try:
            _HASHER.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return None
        if row is None or row.disabled:
            return None
        return _user(row)


def get_user(engine: Engine, user_id: int) -> StaffUser | None:
    with Session(engine) as session:
        row = session.get(StaffUserRow, user_id)
        return _user(row) if row is not None else None


def list_users(engine: Engine) -> list[StaffUser]:
    with Session(engine) as session:
        return [_user(r) for r in session.scalars(select(StaffUserRow).order_by(StaffUserRow.name))]
