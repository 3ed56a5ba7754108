"""ORM rows of a node, separate from the wire types in ``protocol``.

Times are integer milliseconds (BigInteger) so that both engines store them alike.
``changes`` is the per-node change log: its monotonic ``seq`` is what feeds page through.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Float, Index, Integer, String, Text, false
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
    expiry_logged: Mapped[bool] = mapped_column(Boolean, server_default=false())
    title_en: Mapped[str] = mapped_column(String(300))
    record: Mapped[str] = mapped_column(Text)
    content_sha256: Mapped[str] = mapped_column(String(64))

    # The expiry sweep before each feed page: all three columns in one index, so the
    # planner never scans every live listing through ``withdrawn`` alone.
    __table_args__ = (Index("ix_listings_expiry_sweep", "expiry_logged", "withdrawn", "expires"),)


class ChangeRow(Base):
    """One entry of the change log: a listing created, updated or withdrawn, or an
    outbox object queued (``reader``: the member it is for; NULL for a listing's entry)."""

    __tablename__ = "changes"

    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    listing_id: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    at: Mapped[int] = mapped_column(BigInteger)
    reader: Mapped[str | None] = mapped_column(String(32), nullable=True, default=None)

    __table_args__ = (
        Index("ix_changes_listing", "listing_id", "seq"),
        Index("ix_changes_reader", "reader", "seq"),
    )


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


class FeedSentRow(Base):
    """What each reader was last given of each listing, so withdrawal reaches exactly it."""

    __tablename__ = "feed_sent"

    reader: Mapped[str] = mapped_column(String(32), primary_key=True)
    listing_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    consent: Mapped[bool] = mapped_column(Boolean)
    retracted: Mapped[bool] = mapped_column(Boolean, server_default=false())


class SeenNonceRow(Base):
    __tablename__ = "seen_nonces"

    origin: Mapped[str] = mapped_column(String(32), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    created: Mapped[int] = mapped_column(BigInteger, index=True)


class MemberRow(Base):
    """A member of the hub's directory (kept by the hub operator)."""

    __tablename__ = "members"

    node_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    country: Mapped[str] = mapped_column(String(2))
    name: Mapped[str] = mapped_column(String(200))
    base_url: Mapped[str] = mapped_column(String(300))
    keys: Mapped[str] = mapped_column(Text)
    groups: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    updated: Mapped[int] = mapped_column(BigInteger)
    # Where each key came from: {key name: operator | fetch | transition | directory}.
    key_sources: Mapped[str] = mapped_column(Text, server_default="{}")


class RemoteListingRow(Base):
    """A signed summary received from another node, kept with its provenance."""

    __tablename__ = "remote_listings"

    origin: Mapped[str] = mapped_column(String(32), primary_key=True)
    listing_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    category: Mapped[str] = mapped_column(String(20), index=True)
    version: Mapped[int] = mapped_column(Integer)
    item_ts: Mapped[int] = mapped_column(BigInteger)
    key_name: Mapped[str] = mapped_column(String(48))
    policy_version: Mapped[int] = mapped_column(Integer)
    received_at: Mapped[int] = mapped_column(BigInteger)
    feed_seq: Mapped[int] = mapped_column(BigInteger)
    expires: Mapped[int] = mapped_column(BigInteger, index=True)
    visibility: Mapped[str | None] = mapped_column(String(12), nullable=True)
    signed_bytes: Mapped[str] = mapped_column(Text)
    bytes_sha256: Mapped[str] = mapped_column(String(64))

    __table_args__ = (Index("ix_remote_listings_origin_seq", "origin", "feed_seq"),)


class RemoteTombstoneRow(Base):
    """A retracted remote listing: an older copy arriving later is refused."""

    __tablename__ = "remote_tombstones"

    origin: Mapped[str] = mapped_column(String(32), primary_key=True)
    listing_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(32))
    at: Mapped[int] = mapped_column(BigInteger)


class QuarantineRow(Base):
    """An item a peer sent that this node refused, newest ``max_quarantine_per_member``
    of each origin kept (``PeerStateRow.rejected`` counts them all)."""

    __tablename__ = "quarantine"

    id: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    origin: Mapped[str] = mapped_column(String(32))
    received_at: Mapped[int] = mapped_column(BigInteger)
    code: Mapped[str] = mapped_column(String(48))
    message: Mapped[str] = mapped_column(Text)
    item: Mapped[str] = mapped_column(Text)

    __table_args__ = (Index("ix_quarantine_origin_id", "origin", "id"),)


class PeerStateRow(Base):
    """Where this node stands in one peer's feed."""

    __tablename__ = "peer_state"

    peer: Mapped[str] = mapped_column(String(32), primary_key=True)
    cursor: Mapped[str | None] = mapped_column(String(200), nullable=True)
    head: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    position: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_attempt: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_success: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    failures: Mapped[int] = mapped_column(Integer, server_default="0")
    policy_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Items of this peer's feed refused, ever (quarantine keeps only the newest).
    rejected: Mapped[int] = mapped_column(BigInteger, server_default="0")


class SyncRunRow(Base):
    __tablename__ = "sync_runs"

    id: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    peer: Mapped[str] = mapped_column(String(32), index=True)
    started: Mapped[int] = mapped_column(BigInteger)
    finished: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    applied: Mapped[int] = mapped_column(Integer, server_default="0")
    retracted: Mapped[int] = mapped_column(Integer, server_default="0")
    rejected: Mapped[int] = mapped_column(Integer, server_default="0")
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    head: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    cursor: Mapped[str | None] = mapped_column(String(200), nullable=True)
    lag: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class OutboxRow(Base):
    """A signed object for one reader, delivered through this node's feed."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    reader: Mapped[str] = mapped_column(String(32), index=True)
    type: Mapped[str] = mapped_column(String(32))
    created: Mapped[int] = mapped_column(BigInteger)
    obj: Mapped[str] = mapped_column(Text)


class NoticeSentRow(Base):
    __tablename__ = "notices_sent"

    reader: Mapped[str] = mapped_column(String(32), primary_key=True)
    own_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    cp_owner: Mapped[str] = mapped_column(String(32), primary_key=True)
    cp_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    score: Mapped[float] = mapped_column(Float)
    at: Mapped[int] = mapped_column(BigInteger)


class InboxRow(Base):
    """A signed object received from a peer that is not a listing: notices, receipts, EOIs."""

    __tablename__ = "inbox"

    id: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    origin: Mapped[str] = mapped_column(String(32), index=True)
    type: Mapped[str] = mapped_column(String(32), index=True)
    received_at: Mapped[int] = mapped_column(BigInteger)
    obj: Mapped[str] = mapped_column(Text)


class EoiRow(Base):
    """An expression of interest, as the requester, the hub or the owner sees it."""

    __tablename__ = "eois"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    requester: Mapped[str] = mapped_column(String(32))
    owner: Mapped[str] = mapped_column(String(32))
    listing_id: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    updated: Mapped[int] = mapped_column(BigInteger)
    request_obj: Mapped[str] = mapped_column(Text)
    reply_obj: Mapped[str | None] = mapped_column(Text, nullable=True)
    # When this node took it in: the hub counts each requester's recent interest by it.
    received: Mapped[int] = mapped_column(BigInteger, server_default="0")

    __table_args__ = (Index("ix_eois_requester_received", "requester", "received"),)


class SearchDocRow(Base):
    """One listing in the hub's public search, as its owner shows it to anyone (``*``):
    written with the summary it comes from (or the hub's own listing and policy), so a
    search reads rows, never summaries. Its words are in ``search_fts``, outside these
    models: an FTS5 table on SQLite, a ``tsvector`` with a GIN index on PostgreSQL."""

    __tablename__ = "search_docs"

    id: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    owner: Mapped[str] = mapped_column(String(32))
    listing_id: Mapped[str] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(20))
    country: Mapped[str] = mapped_column(String(2))
    trl: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The view's sectors, one a line: a facet counts each (rare combinations, one scan).
    sectors: Mapped[str] = mapped_column(Text)
    expires: Mapped[int] = mapped_column(BigInteger)

    # The facets: one walk of a covering index, in GROUP BY order. Ids are never reused
    # (AUTOINCREMENT on SQLite): a new largest id or a new removal marks every write.
    __table_args__ = (
        Index("ux_search_docs_owner_listing", "owner", "listing_id", unique=True),
        Index("ix_search_docs_facets", "category", "country", "sectors", "expires", "trl"),
        Index("ix_search_docs_expires", "expires"),
        Index(
            "ix_search_docs_order", "owner", "listing_id", "category", "country", "trl", "expires"
        ),
        Index(
            "ix_search_docs_country_order",
            "country",
            "owner",
            "listing_id",
            "category",
            "trl",
            "expires",
        ),
        {"sqlite_autoincrement": True},
    )


class SearchRemovalRow(Base):
    """One removal from search: with the largest document id, it tells cached facets that
    the rows changed, without counting them (only the newest few are kept)."""

    __tablename__ = "search_removals"

    id: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)

    __table_args__ = ({"sqlite_autoincrement": True},)


class SearchShownRow(Base):
    """What search shows of a document, apart from it: a search scans narrow rows and
    reads this only for the page it returns."""

    __tablename__ = "search_shown"

    doc_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    shown: Mapped[str] = mapped_column(Text)


class SearchCodeRow(Base):
    """A classification code of a search document, for the IPC prefix filter."""

    __tablename__ = "search_codes"

    doc_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    code: Mapped[str] = mapped_column(String(40), primary_key=True)

    __table_args__ = (Index("ix_search_codes_code", "code", "doc_id"),)


class SearchCountRow(Base):
    """Search documents counted by their facet values, as changes: each write of search
    rows adds one row per (category, country, sectors, trl) it added (``n`` > 0) or removed
    (``n`` < 0), never updating one, so that pulls writing at the same time never wait on
    each other here; the writers fold the rows into one per value now and then
    (``search_store.fold_counts``). A search without words sums this small table instead
    of counting the documents."""

    __tablename__ = "search_counts"

    id: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    category: Mapped[str] = mapped_column(String(20))
    country: Mapped[str] = mapped_column(String(2))
    sectors: Mapped[str] = mapped_column(Text)
    trl: Mapped[int | None] = mapped_column(Integer, nullable=True)
    n: Mapped[int] = mapped_column(Integer)


class StaffUserRow(Base):
    """A person who works in this node's console (the admin token stays for scripts)."""

    __tablename__ = "staff_users"

    id: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))  # viewer | editor | admin
    disabled: Mapped[bool] = mapped_column(Boolean, server_default=false())
    created: Mapped[int] = mapped_column(BigInteger)


class WebSessionRow(Base):
    """A console session: the cookie holds a random token, this row its SHA-256."""

    __tablename__ = "web_sessions"

    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(Integer, index=True)
    csrf: Mapped[str] = mapped_column(String(64))
    created: Mapped[int] = mapped_column(BigInteger)
    last_seen: Mapped[int] = mapped_column(BigInteger)


class LoginAttemptRow(Base):
    """A failed login, counted per account name and per client address for throttling."""

    __tablename__ = "login_attempts"

    id: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), index=True)
    address: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[int] = mapped_column(BigInteger, index=True)
    # The SHA-256 of the browser's device token when it is one this name signed in
    # with before ("" for any other browser): such attempts are counted on their own.
    device: Mapped[str] = mapped_column(String(64), default="", server_default="")


class LoginDeviceRow(Base):
    """A browser that signed in under ``name``: the cookie holds a random token, this
    row its SHA-256. It lets that browser past a pause others caused for the name."""

    __tablename__ = "login_devices"

    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), index=True)
    created: Mapped[int] = mapped_column(BigInteger)


class AuditRow(Base):
    """Who changed what, and when: listings, rules, EoI answers, users, directory."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    at: Mapped[int] = mapped_column(BigInteger, index=True)
    actor: Mapped[str] = mapped_column(String(64))  # a staff name, or "token" / "cli"
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(200))
    detail: Mapped[str] = mapped_column(Text, server_default="")


class ShareLogRow(Base):
    """Which peer received which version of which listing, and when (from this node's own
    feed): the owner's audit of where its data went."""

    __tablename__ = "share_log"

    id: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    reader: Mapped[str] = mapped_column(String(32))
    listing_id: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))  # summary | withdrawal
    at: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        Index("ix_share_log_listing", "listing_id", "at"),
        Index("ix_share_log_reader", "reader", "at"),
    )


class VisitorInterestRow(Base):
    """A marketplace visitor's expression of interest, queued at the hub for its operator
    and forwarded to the owning center (the visitor never sees the owner's contacts)."""

    __tablename__ = "visitor_interests"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str] = mapped_column(String(32), index=True)
    listing_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320))
    organization: Mapped[str] = mapped_column(String(200), server_default="")
    message: Mapped[str] = mapped_column(Text)
    address_sha256: Mapped[str] = mapped_column(String(64), index=True)
    state: Mapped[str] = mapped_column(String(16))  # queued | forwarded | dropped
    received: Mapped[int] = mapped_column(BigInteger, index=True)


class MatchStampRow(Base):
    """What the hub's matching worker has finished for one listing it holds: the listing's
    version (and the scoring and model) at which its matches were found and their notices
    written, in the same transaction as those notices. A held listing whose stamp differs
    (new, changed, or scored differently since) is still to be matched: the worker's work
    queue, which survives a stop."""

    __tablename__ = "match_stamps"

    owner: Mapped[str] = mapped_column(String(32), primary_key=True)
    listing_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    stamp: Mapped[str] = mapped_column(String(200))


class MatchQueueRow(Base):
    """A held summary the hub's matcher has not yet taken in: one row per listing a page
    added, replaced or purged, written in the page's transaction (``node.hub.match_queue``)
    and deleted by id once the matching worker has read it. Only what is not yet taken in
    is here, so a pass reads the changes, not everything held."""

    __tablename__ = "match_queue"

    id: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    owner: Mapped[str] = mapped_column(String(32))
    listing_id: Mapped[str] = mapped_column(String(64))


class SignedSummaryRow(Base):
    """The summary a reader was last signed of one of this node's listings, as canonical
    bytes (``node.services.summary_cache``): feed pages reuse them while the listing's
    version and content and the reader's view digest (policy, audience, key) are the
    same. ``body`` is NULL when that view gives the reader nothing (``code`` says why).
    One row per reader and listing: a new signing replaces it, so the table never holds
    more than readers x listings."""

    __tablename__ = "signed_summaries"

    reader: Mapped[str] = mapped_column(String(32), primary_key=True)
    listing_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    content_sha256: Mapped[str] = mapped_column(String(64))
    digest: Mapped[str] = mapped_column(String(64))
    ts: Mapped[int] = mapped_column(BigInteger)
    consent: Mapped[bool] = mapped_column(Boolean, server_default=false())
    code: Mapped[str] = mapped_column(String(40))
    body: Mapped[str | None] = mapped_column(Text, nullable=True)


class NoticeNamedRow(Base):
    """A match notice queued for ``reader`` that named ``cp_owner``'s ``cp_id``, one row
    per such notice (``node.hub.notice_index``): the EoI gate asks this index whether a
    member was named a listing, instead of reading the member's notices."""

    __tablename__ = "notices_named"

    outbox_id: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=False)
    reader: Mapped[str] = mapped_column(String(32))
    cp_owner: Mapped[str] = mapped_column(String(32))
    cp_id: Mapped[str] = mapped_column(String(64))

    __table_args__ = (Index("ix_notices_named_reader_cp", "reader", "cp_owner", "cp_id"),)


# The EoI gate's lookup of a member's matches by counterpart (migration 0011).
Index(
    "ix_notices_sent_reader_cp",
    NoticeSentRow.reader,
    NoticeSentRow.cp_owner,
    NoticeSentRow.cp_id,
)
# What a member's EoI absorber reads: rows of its types after the last it read (0011).
Index("ix_inbox_type_id", InboxRow.type, InboxRow.id)
