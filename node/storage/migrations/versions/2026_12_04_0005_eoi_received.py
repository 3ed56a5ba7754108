"""Expressions of interest: when each was received, so the hub can hold each requester
to its rate limits (so many per hour, so many per listing per day) with one index scan.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("eois") as batch:
        batch.add_column(sa.Column("received", sa.BigInteger(), server_default="0", nullable=False))
    op.execute("UPDATE eois SET received = updated")
    op.create_index("ix_eois_requester_received", "eois", ["requester", "received"])


def downgrade() -> None:
    op.drop_index("ix_eois_requester_received", table_name="eois")
    with op.batch_alter_table("eois") as batch:
        batch.drop_column("received")
