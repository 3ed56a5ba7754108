"""Expressions of interest at scale: the hub's index of which listings its match notices
named to each member (``notices_named``, filled here from the notices queued so far),
and an index of ``notices_sent`` by reader and counterpart, so the EoI gate's check is
two indexed lookups instead of a scan of the member's notices; and an index of
``inbox`` by type and id, for a member's absorber reading only the EoI rows it has not.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

BATCH = 1000
SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _named(text: str) -> tuple[str, str] | None:
    try:
        obj: Any = json.loads(text)
    except ValueError:
        return None
    counterpart = obj.get("counterpart") if isinstance(obj, dict) else None
    if not isinstance(counterpart, dict):
        return None
    owner, listing_id = counterpart.get("owner"), counterpart.get("listing_id")
    if isinstance(owner, str) and isinstance(listing_id, str):
        return owner, listing_id
    return None


def upgrade() -> None:
    named = op.create_table(
        "notices_named",
        sa.Column("outbox_id", SEQ, primary_key=True, autoincrement=False),
        sa.Column("reader", sa.String(32), nullable=False),
        sa.Column("cp_owner", sa.String(32), nullable=False),
        sa.Column("cp_id", sa.String(64), nullable=False),
    )
    op.create_index("ix_notices_named_reader_cp", "notices_named", ["reader", "cp_owner", "cp_id"])
    op.create_index("ix_notices_sent_reader_cp", "notices_sent", ["reader", "cp_owner", "cp_id"])
    op.create_index("ix_inbox_type_id", "inbox", ["type", "id"])
    outbox = sa.table(
        "outbox",
        sa.column("id", sa.BigInteger),
        sa.column("reader", sa.String),
        sa.column("type", sa.String),
        sa.column("obj", sa.Text),
    )
    conn = op.get_bind()
    after = 0
    while True:
        rows = conn.execute(
            sa.select(outbox.c.id, outbox.c.reader, outbox.c.obj)
            .where(outbox.c.type == "match_notice", outbox.c.id > after)
            .order_by(outbox.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            break
        after = rows[-1].id
        values = []
        for row in rows:
            found = _named(row.obj)
            if found is not None:
                values.append(
                    {
                        "outbox_id": row.id,
                        "reader": row.reader,
                        "cp_owner": found[0],
                        "cp_id": found[1],
                    }
                )
        if values:
            conn.execute(sa.insert(named), values)


def downgrade() -> None:
    op.drop_index("ix_inbox_type_id", table_name="inbox")
    op.drop_index("ix_notices_sent_reader_cp", table_name="notices_sent")
    op.drop_index("ix_notices_named_reader_cp", table_name="notices_named")
    op.drop_table("notices_named")
