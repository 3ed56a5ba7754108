"""The change log's entries name their reader (``changes.reader``): an outbox entry the
member it is addressed to, a listing's entry NULL (every reader's). A feed page then reads
the listings' entries and the reader's own outbox entries by the index (reader, seq),
not every member's match notices and custody receipts (at fifty members, 49 of every 50
outbox entries a page scanned were another's). Filled here from the outbox for the
entries logged so far.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("changes", sa.Column("reader", sa.String(32), nullable=True))
    # By the outbox's key (its id is the entry's listing_id after "o:"), one look each.
    op.execute(
        "UPDATE changes SET reader = (SELECT outbox.reader FROM outbox "
        "WHERE outbox.id = CAST(substr(changes.listing_id, 3) AS BIGINT)) "
        "WHERE changes.listing_id LIKE 'o:%'"
    )
    op.create_index("ix_changes_reader", "changes", ["reader", "seq"])


def downgrade() -> None:
    op.drop_index("ix_changes_reader", table_name="changes")
    with op.batch_alter_table("changes") as batch:
        batch.drop_column("reader")
