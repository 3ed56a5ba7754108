"""The audit log: every change made in the console or the CLI, with who and when."""

from __future__ import annotations

from sqlalchemy.orm import Session

from node.storage.models import AuditRow


def record(
    session: Session, *, at: int, actor: str, action: str, target: str, detail: str = ""
) -> None:
    """Add one entry in ``session``'s transaction: it commits with the change it records."""
    session.add(AuditRow(at=at, actor=actor, action=action, target=target[:200], detail=detail))
