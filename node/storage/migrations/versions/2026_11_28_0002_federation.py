"""Federation: feed bookkeeping, nonces, member directory, remote copies, sync runs.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

seq_type = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("listings") as batch:
        batch.add_column(
            sa.Column("expiry_logged", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    op.create_table(
        "feed_sent",
        sa.Column("reader", sa.String(32), primary_key=True),
        sa.Column("listing_id", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("consent", sa.Boolean(), nullable=False),
        sa.Column("retracted", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.create_table(
        "seen_nonces",
        sa.Column("origin", sa.String(32), primary_key=True),
        sa.Column("nonce", sa.String(64), primary_key=True),
        sa.Column("created", sa.BigInteger(), nullable=False, index=True),
    )
    op.create_table(
        "members",
        sa.Column("node_id", sa.String(32), primary_key=True),
        sa.Column("country", sa.String(2), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("base_url", sa.String(300), nullable=False),
        sa.Column("keys", sa.Text(), nullable=False),
        sa.Column("groups", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("updated", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "remote_listings",
        sa.Column("origin", sa.String(32), primary_key=True),
        sa.Column("listing_id", sa.String(64), primary_key=True),
        sa.Column("category", sa.String(20), nullable=False, index=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("item_ts", sa.BigInteger(), nullable=False),
        sa.Column("key_name", sa.String(48), nullable=False),
        sa.Column("policy_version", sa.Integer(), nullable=False),
        sa.Column("received_at", sa.BigInteger(), nullable=False),
        sa.Column("feed_seq", sa.BigInteger(), nullable=False),
        sa.Column("expires", sa.BigInteger(), nullable=False, index=True),
        sa.Column("visibility", sa.String(12), nullable=True),
        sa.Column("signed_bytes", sa.Text(), nullable=False),
        sa.Column("bytes_sha256", sa.String(64), nullable=False),
    )
    op.create_table(
        "remote_tombstones",
        sa.Column("origin", sa.String(32), primary_key=True),
        sa.Column("listing_id", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "quarantine",
        sa.Column("id", seq_type, primary_key=True, autoincrement=True),
        sa.Column("origin", sa.String(32), nullable=False, index=True),
        sa.Column("received_at", sa.BigInteger(), nullable=False),
        sa.Column("code", sa.String(48), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("item", sa.Text(), nullable=False),
    )
    op.create_table(
        "peer_state",
        sa.Column("peer", sa.String(32), primary_key=True),
        sa.Column("cursor", sa.String(200), nullable=True),
        sa.Column("head", sa.BigInteger(), nullable=True),
        sa.Column("position", sa.BigInteger(), nullable=True),
        sa.Column("last_attempt", sa.BigInteger(), nullable=True),
        sa.Column("last_success", sa.BigInteger(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("failures", sa.Integer(), server_default="0", nullable=False),
        sa.Column("policy_version", sa.Integer(), nullable=True),
    )
    op.create_table(
        "sync_runs",
        sa.Column("id", seq_type, primary_key=True, autoincrement=True),
        sa.Column("peer", sa.String(32), nullable=False, index=True),
        sa.Column("started", sa.BigInteger(), nullable=False),
        sa.Column("finished", sa.BigInteger(), nullable=True),
        sa.Column("applied", sa.Integer(), server_default="0", nullable=False),
        sa.Column("retracted", sa.Integer(), server_default="0", nullable=False),
        sa.Column("rejected", sa.Integer(), server_default="0", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("head", sa.BigInteger(), nullable=True),
        sa.Column("cursor", sa.String(200), nullable=True),
        sa.Column("lag", sa.BigInteger(), nullable=True),
    )


def downgrade() -> None:
    for table in (
        "sync_runs",
        "peer_state",
        "quarantine",
        "remote_tombstones",
        "remote_listings",
        "members",
        "seen_nonces",
        "feed_sent",
    ):
        op.drop_table(table)
    with op.batch_alter_table("listings") as batch:
        batch.drop_column("expiry_logged")
