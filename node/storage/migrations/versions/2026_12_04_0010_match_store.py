"""The matching worker's durable progress: per held listing, the stamp (listing version,
scoring and model) at which its matches were last found and notified (``match_stamps``).
A listing whose stamp differs is still to be matched, so work left by a stop resumes at
the next start, and a change of scoring re-matches everything once.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "match_stamps",
        sa.Column("owner", sa.String(32), primary_key=True),
        sa.Column("listing_id", sa.String(64), primary_key=True),
        sa.Column("stamp", sa.String(200), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("match_stamps")
