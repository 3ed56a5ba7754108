"""Public search's counts by facet value (``search_counts``), so that a search without
words sums a small table instead of counting every document: filled here from the
documents indexed so far, then written with them (``node.hub.search_store``); and an
index of ``search_docs`` by country in the pages' order, so that a page filtered by
country walks that country's rows only.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "search_counts",
        sa.Column("id", SEQ, primary_key=True, autoincrement=True),
        sa.Column("category", sa.String(20), nullable=False),
        sa.Column("country", sa.String(2), nullable=False),
        sa.Column("sectors", sa.Text(), nullable=False),
        sa.Column("trl", sa.Integer(), nullable=True),
        sa.Column("n", sa.Integer(), nullable=False),
    )
    op.execute(
        "INSERT INTO search_counts (category, country, sectors, trl, n) "
        "SELECT category, country, sectors, trl, count(*) FROM search_docs "
        "GROUP BY category, country, sectors, trl"
    )
    op.create_index(
        "ix_search_docs_country_order",
        "search_docs",
        ["country", "owner", "listing_id", "category", "trl", "expires"],
    )


def downgrade() -> None:
    op.drop_index("ix_search_docs_country_order", table_name="search_docs")
    op.drop_table("search_counts")
