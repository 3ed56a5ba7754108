"""Sign-in pauses per browser: a browser that signed in under a name before carries a
device token (``login_devices`` holds its SHA-256), and its failed attempts are counted
on their own (``login_attempts.device``), so strangers' failures for a name no longer
keep its user out of a browser they have used.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "login_attempts",
        sa.Column("device", sa.String(64), nullable=False, server_default=""),
    )
    op.create_table(
        "login_devices",
        sa.Column("token_sha256", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, index=True),
        sa.Column("created", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("login_devices")
    with op.batch_alter_table("login_attempts") as batch:
        batch.drop_column("device")
