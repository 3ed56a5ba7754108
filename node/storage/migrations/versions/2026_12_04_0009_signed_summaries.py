"""Signed summaries kept per (listing version, view digest), so feed pages are assembled
from stored bytes.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "signed_summaries",
        sa.Column("reader", sa.String(32), primary_key=True),
        sa.Column("listing_id", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("content_sha256", sa.String(64), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("ts", sa.BigInteger(), nullable=False),
        sa.Column("consent", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("code", sa.String(40), nullable=False),
        sa.Column("body", sa.Text(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("signed_summaries")
