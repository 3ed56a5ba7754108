"""``INSERT ... ON CONFLICT DO NOTHING`` on both databases: a row that two transactions
may both make (the first page of a peer, an EoI received twice) is made once, and the
loser waits on the winner's row lock instead of failing on its key."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from node.storage.models import Base


def insert_ignore(session: Session, model: type[Base], rows: Sequence[dict[str, Any]]) -> None:
    """``INSERT ... ON CONFLICT DO NOTHING`` of ``rows`` into ``model``'s table."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    make = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(make(model).on_conflict_do_nothing(), list(rows))
