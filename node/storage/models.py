"""ORM rows of a node, separate from the wire types in ``protocol``.

Times are integer milliseconds (BigInteger) so that both engines store them alike.
``changes`` is the per-node change log: its monotonic ``seq`` is what feeds page through.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Index, Integer, String, Text, false
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
SeqType = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


class ListingRow(Base):
    """The current record of one of this node's own listings (or its tombstone)."""

    __tablename__ = "listings"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    category: Mapped[str] = mapped_column(String(20), index=True)
    version: Mapped[int] = mapped_column(Integer)
    visibility: Mapped[str] = mapped_column(String(12), index=True)
    created: Mapped[int] = mapped_column(BigInteger)
    updated: Mapped[int] = mapped_column(BigInteger)
    expires: Mapped[int] = mapped_column(BigInteger, index=True)
    withdrawn: Mapped[bool] = mapped_column(Boolean, server_default=false(), index=True)
    title_en: Mapped[str] = mapped_column(String(300))
    record: Mapped[str] = mapped_column(Text)
    content_sha256: Mapped[str] = mapped_column(String(64))


class ChangeRow(Base):
    """One entry of the change log: a listing created, updated or withdrawn."""

    __tablename__ = "changes"

    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    listing_id: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    at: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_changes_listing", "listing_id", "seq"),)


class PolicyVersionRow(Base):
    """A saved sharing policy; exactly one is active."""

    __tablename__ = "policy_versions"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    author: Mapped[str] = mapped_column(String(100))
    created: Mapped[int] = mapped_column(BigInteger)
    text: Mapped[str] = mapped_column(Text)
    digest: Mapped[str] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, server_default=false())


class MetaRow(Base):
    """Small key-value facts about this node's database."""

    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
