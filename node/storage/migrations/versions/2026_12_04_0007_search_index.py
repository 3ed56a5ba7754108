"""Public search on the database's own full-text index: one row per searchable listing
(``search_docs``), what it shows (``search_shown``), its classification codes
(``search_codes``) and its words (``search_fts``: an FTS5 table on SQLite, a weighted
``tsvector`` with a GIN index on PostgreSQL). The rows are filled from what the node holds
at its first search.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

SeqType = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "search_docs",
        sa.Column("id", SeqType, primary_key=True, autoincrement=True),
        sa.Column("owner", sa.String(32), nullable=False),
        sa.Column("listing_id", sa.String(64), nullable=False),
        sa.Column("category", sa.String(20), nullable=False),
        sa.Column("country", sa.String(2), nullable=False),
        sa.Column("trl", sa.Integer(), nullable=True),
        sa.Column("sectors", sa.Text(), nullable=False),
        sa.Column("expires", sa.BigInteger(), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ux_search_docs_owner_listing", "search_docs", ["owner", "listing_id"], unique=True
    )
    op.create_index(
        "ix_search_docs_facets",
        "search_docs",
        ["category", "country", "sectors", "expires", "trl"],
    )
    op.create_index("ix_search_docs_expires", "search_docs", ["expires"])
    op.create_index(
        "ix_search_docs_order",
        "search_docs",
        ["owner", "listing_id", "category", "country", "trl", "expires"],
    )
    op.create_table(
        "search_removals",
        sa.Column("id", SeqType, primary_key=True, autoincrement=True),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "search_shown",
        sa.Column("doc_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("shown", sa.Text(), nullable=False),
    )
    op.create_table(
        "search_codes",
        sa.Column("doc_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("code", sa.String(40), primary_key=True),
    )
    op.create_index("ix_search_codes_code", "search_codes", ["code", "doc_id"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE TABLE search_fts (doc_id BIGINT PRIMARY KEY, doc TSVECTOR NOT NULL)")
        op.execute("CREATE INDEX ix_search_fts_doc ON search_fts USING GIN (doc)")
    else:
        op.execute(
            "CREATE VIRTUAL TABLE search_fts USING fts5(title, body, "
            "tokenize=\"unicode61 remove_diacritics 0 categories 'L* N* M* Co'\")"
        )


def downgrade() -> None:
    op.execute("DROP TABLE search_fts")
    op.drop_table("search_codes")
    op.drop_table("search_shown")
    op.drop_table("search_removals")
    op.drop_table("search_docs")
