"""Quarantine keeps the newest ``max_quarantine_per_member`` items of each origin, and
``peer_state.rejected`` counts every item refused, which the hub's monitor reports
(before, it counted the quarantine's rows, so the rows could never be trimmed). Filled
here from the rows kept so far; the index (origin, id) finds an origin's oldest rows.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "peer_state", sa.Column("rejected", sa.BigInteger(), nullable=False, server_default="0")
    )
    op.execute(
        "UPDATE peer_state SET rejected = "
        "(SELECT count(*) FROM quarantine WHERE quarantine.origin = peer_state.peer)"
    )
    op.drop_index("ix_quarantine_origin", table_name="quarantine")
    op.create_index("ix_quarantine_origin_id", "quarantine", ["origin", "id"])


def downgrade() -> None:
    op.drop_index("ix_quarantine_origin_id", table_name="quarantine")
    op.create_index("ix_quarantine_origin", "quarantine", ["origin"])
    with op.batch_alter_table("peer_state") as batch:
        batch.drop_column("rejected")
