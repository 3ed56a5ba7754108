"""Hub: outbox of signed objects for one reader (receipts, notices, EOIs), notices sent,
expressions of interest.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

seq_type = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", seq_type, primary_key=True, autoincrement=True),
        sa.Column("reader", sa.String(32), nullable=False, index=True),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.Column("obj", sa.Text(), nullable=False),
    )
    op.create_table(
        "notices_sent",
        sa.Column("reader", sa.String(32), primary_key=True),
        sa.Column("own_id", sa.String(64), primary_key=True),
        sa.Column("cp_owner", sa.String(32), primary_key=True),
        sa.Column("cp_id", sa.String(64), primary_key=True),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "inbox",
        sa.Column("id", seq_type, primary_key=True, autoincrement=True),
        sa.Column("origin", sa.String(32), nullable=False, index=True),
        sa.Column("type", sa.String(32), nullable=False, index=True),
        sa.Column("received_at", sa.BigInteger(), nullable=False),
        sa.Column("obj", sa.Text(), nullable=False),
    )
    op.create_table(
        "eois",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("requester", sa.String(32), nullable=False),
        sa.Column("owner", sa.String(32), nullable=False),
        sa.Column("listing_id", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("updated", sa.BigInteger(), nullable=False),
        sa.Column("request_obj", sa.Text(), nullable=False),
        sa.Column("reply_obj", sa.Text(), nullable=True),
    )


def downgrade() -> None:
    for table in ("eois", "inbox", "notices_sent", "outbox"):
        op.drop_table(table)
