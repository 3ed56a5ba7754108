"""Remote listings: index (origin, feed_seq), so a reader finds the last position it
holds of a peer without reading every copy of that peer (a pull of ten changes from a
node of 100,000 listings spent most of its time there).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_remote_listings_origin_seq", "remote_listings", ["origin", "feed_seq"])


def downgrade() -> None:
    op.drop_index("ix_remote_listings_origin_seq", table_name="remote_listings")
