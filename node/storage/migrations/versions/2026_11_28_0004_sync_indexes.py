"""Indexes for sync at 100,000 listings, where a pull of ten changes spent most of its
time in two scans:

- remote_listings (origin, feed_seq): a reader finds the last position it holds of a
  peer without reading every copy of that peer;
- listings (expiry_logged, withdrawn, expires): the expiry sweep before each feed page
  reads only expired listings (with the ``withdrawn`` index alone, SQLite read them all).

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
    op.create_index(
        "ix_listings_expiry_sweep", "listings", ["expiry_logged", "withdrawn", "expires"]
    )


def downgrade() -> None:
    op.drop_index("ix_listings_expiry_sweep", table_name="listings")
    op.drop_index("ix_remote_listings_origin_seq", table_name="remote_listings")
