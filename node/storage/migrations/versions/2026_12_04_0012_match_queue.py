"""The hub matcher's queue of changes (``match_queue``): each page's added, replaced and
purged listings, written in the page's transaction and deleted once the matching worker
has read them, so that a re-match reads what changed instead of every held summary, and
a change whose pull ended in a crash (or in another process) is still found.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "match_queue",
        sa.Column("id", SEQ, primary_key=True, autoincrement=True),
        sa.Column("owner", sa.String(32), nullable=False),
        sa.Column("listing_id", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("match_queue")
