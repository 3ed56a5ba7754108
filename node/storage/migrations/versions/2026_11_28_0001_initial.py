"""Initial schema: listings, change log, policy versions, meta.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

seq_type = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "listings",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("category", sa.String(20), nullable=False, index=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("visibility", sa.String(12), nullable=False, index=True),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.Column("updated", sa.BigInteger(), nullable=False),
        sa.Column("expires", sa.BigInteger(), nullable=False, index=True),
        sa.Column("withdrawn", sa.Boolean(), server_default=sa.false(), nullable=False, index=True),
        sa.Column("title_en", sa.String(300), nullable=False),
        sa.Column("record", sa.Text(), nullable=False),
        sa.Column("content_sha256", sa.String(64), nullable=False),
    )
    op.create_table(
        "changes",
        sa.Column("seq", seq_type, primary_key=True, autoincrement=True),
        sa.Column("listing_id", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_changes_listing", "changes", ["listing_id", "seq"])
    op.create_table(
        "policy_versions",
        sa.Column("version", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("author", sa.String(100), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.create_table(
        "meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("meta")
    op.drop_table("policy_versions")
    op.drop_index("ix_changes_listing", "changes")
    op.drop_table("changes")
    op.drop_table("listings")
