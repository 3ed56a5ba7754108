"""The rows of public search: one per listing anyone may see, written in the transaction
that stores, replaces or purges the summary it comes from (and for the hub's own listings
when they or the hub's policy change), so that a search reads an index, never summaries.

Words go to the database's own full-text index (``search_fts``: FTS5 on SQLite, a
weighted ``tsvector`` with a GIN index on PostgreSQL), written as tokens made here, the
same way on both engines: lower-cased words, and for scripts written without spaces
(Thai, Lao, Khmer, Myanmar, Chinese, Japanese kana) overlapping character pairs, so that
any run of two or more such characters is found as a phrase of pairs. A query term finds
words it begins; a term in those scripts finds any text containing it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select, text
from sqlalchemy.orm import Session

from node.storage.models import (
    MemberRow,
    SearchCodeRow,
    SearchCountRow,
    SearchDocRow,
    SearchRemovalRow,
    SearchShownRow,
)

FTS_TABLE = "search_fts"
# Letters and digits, plus the combining marks of the scripts most used by members
# (Python's \w leaves them out, and they sit inside Thai and Indic words).
# (Underscores are turned to spaces before: they are not letters.)
_WORD = re.compile(r"[\w\u0300-\u036f\u0900-\u0dff\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff]+")
_NO_SPACES = re.compile(
    r"[\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff"
    r"\uf900-\ufaff\U00020000-\U0002ffff]+"
)
MAX_TOKEN = 64
# A query's words: at most this many, each also found as the beginning of a longer word
# from this many characters on (``is_prefix``).
MAX_TERMS = 16
MIN_PREFIX = 3
# search_counts is folded (one row per facet value) when its row ids pass a multiple of
# this: a search without words sums at most this many rows more than there are values.
FOLD_EVERY = 4096
_FOLD_LOCK = int.from_bytes(hashlib.sha256(b"cattc-search-counts").digest()[:8], "big", signed=True)
FacetKey = tuple[str, str, str, int | None]  # category, country, sectors, trl
# search_counts made from the documents (the migration's, and the bench's after its bulk rows)
RECOUNT = (
    "INSERT INTO search_counts (category, country, sectors, trl, n) "
    "SELECT category, country, sectors, trl, count(*) FROM search_docs "
    "GROUP BY category, country, sectors, trl"
)


def _pieces(word: str) -> list[tuple[bool, str]]:
    """``word`` split into (written without spaces?, piece) runs."""
    out: list[tuple[bool, str]] = []
    pos = 0
    for m in _NO_SPACES.finditer(word):
        if m.start() > pos:
            out.append((False, word[pos : m.start()]))
        out.append((True, m.group()))
        pos = m.end()
    if pos < len(word):
        out.append((False, word[pos:]))
    return out


def _pairs(run: str) -> list[str]:
    return [run[i : i + 2] for i in range(len(run) - 1)]


def tokens(value: str) -> list[str]:
    """The indexed tokens of ``value``: words, and character pairs then the last
    character of each run without spaces (so a one-character query finds every place)."""
    low = value.lower().replace("_", " ")
    if not _NO_SPACES.search(low):  # the common case: words only
        return [w[:MAX_TOKEN] for w in _WORD.findall(low)]
    out: list[str] = []
    for word in _WORD.findall(low):
        for dense, piece in _pieces(word):
            if dense:
                out.extend(_pairs(piece))
                out.append(piece[-1])
            else:
                out.append(piece[:MAX_TOKEN])
    return out


def query_terms(q: str) -> list[list[str]]:
    """What a query asks for: each term a phrase of tokens (a prefix when one token long
    enough, ``is_prefix``), all terms required, each once, at most ``MAX_TERMS``. Anything
    that is not a letter, digit or mark is dropped, so no input can reach the engine's
    query syntax."""
    terms: list[list[str]] = []
    for word in _WORD.finditer(q.lower().replace("_", " ")):
        for dense, piece in _pieces(word.group()):
            term = _pairs(piece) if dense and len(piece) > 1 else [piece[:MAX_TOKEN]]
            if term not in terms:
                terms.append(term)
                if len(terms) == MAX_TERMS:  # the rest is never looked at
                    return terms
    return terms


def is_prefix(phrase: list[str]) -> bool:
    """Whether a term also finds the words it begins: one token of ``MIN_PREFIX``
    characters or more, or one character of a script written without spaces (a word
    there). Each word an engine finds by a prefix is one more list of rows to merge: a
    query of 32 one-letter prefixes took 1.5 s on 100,000 summaries, "a" alone 60 ms."""
    if len(phrase) != 1:
        return False
    return len(phrase[0]) >= MIN_PREFIX or _NO_SPACES.fullmatch(phrase[0]) is not None


def fts5_query(terms: list[list[str]]) -> str:
    """An FTS5 MATCH string: every token double-quoted (tokens hold no quotes)."""
    parts = []
    for phrase in terms:
        quoted = '"' + " ".join(phrase) + '"'
        parts.append(quoted + "*" if is_prefix(phrase) else quoted)
    return " AND ".join(parts)


def tsquery(terms: list[list[str]]) -> str:
    """A PostgreSQL tsquery literal: lexemes single-quoted, prefixes ``:*``, pairs ``<->``."""
    parts = []
    for phrase in terms:
        if len(phrase) == 1:
            parts.append(f"'{phrase[0]}'" + (":*" if is_prefix(phrase) else ""))
        else:
            parts.append("(" + " <-> ".join(f"'{t}'" for t in phrase) + ")")
    return " & ".join(parts)


def _tsvector(title: list[str], body: list[str]) -> str:
    """A tsvector literal with positions; title lexemes weigh A, the rest D."""
    seen: dict[str, list[str]] = {}
    pos = 0
    for weight, toks in (("A", title), ("", body)):
        for tok in toks:
            pos = min(pos + 1, 16383)
            where = seen.setdefault(tok, [])
            if len(where) < 255:
                where.append(f"{pos}{weight}")
    return " ".join(f"'{tok}':{','.join(where)}" for tok, where in seen.items())


def public_listing(held: dict[str, Any]) -> dict[str, Any] | None:
    """What public search shows of a member's summary (its ``listing`` member): the
    owner's public view in the summary's envelope, or None when the owner gave none."""
    public = held.get("public_view")
    if not isinstance(public, dict):
        return None
    keep = ("id", "category", "version", "updated", "expires")
    return {
        **{k: held[k] for k in keep},
        "fields": public["fields"],
        "rights": public["rights"],
        "public": True,
    }


@dataclass(frozen=True)
class SearchDoc:
    """A listing as public search shows it, with what it is found and filtered by."""

    owner: str
    shown: dict[str, Any]
    country: str

    def values(self) -> dict[str, Any]:
        f = self.shown.get("fields", {})
        trl = f.get("trl")
        sectors = [s for s in [f.get("sector"), *(f.get("sectors") or [])] if s]
        return {
            "owner": self.owner,
            "listing_id": self.shown["id"],
            "category": self.shown["category"],
            "country": str(f.get("country") or self.country)[:2],
            "trl": trl if isinstance(trl, int) and not isinstance(trl, bool) else None,
            "sectors": "\n".join(str(s).replace("\n", " ") for s in sectors),
            "expires": self.shown["expires"],
        }

    def shown_json(self) -> str:
        return json.dumps(self.shown, ensure_ascii=False, sort_keys=True)

    def words(self) -> tuple[list[str], list[str]]:
        f = self.shown.get("fields", {})
        title = " ".join(str(t) for t in (f.get("title") or {}).values())
        body = [f.get("summary", ""), f.get("need", ""), *(f.get("keywords") or [])]
        return tokens(title), tokens(" ".join(str(b) for b in body if b))

    def codes(self) -> set[str]:
        return {str(c).upper()[:40] for c in self.shown.get("fields", {}).get("ipc") or []}


def remove(session: Session, owner: str, listing_ids: Iterable[str]) -> None:
    """Take these listings out of search (absent ones are no error)."""
    ids = list(listing_ids)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        doc_ids = list(
            session.scalars(
                select(SearchDocRow.id).where(
                    SearchDocRow.owner == owner, SearchDocRow.listing_id.in_(chunk)
                )
            )
        )
        _remove_ids(session, doc_ids)


def remove_owner(session: Session, owner: str) -> None:
    doc_ids = list(session.scalars(select(SearchDocRow.id).where(SearchDocRow.owner == owner)))
    for start in range(0, len(doc_ids), 500):
        _remove_ids(session, doc_ids[start : start + 500])


def _remove_ids(session: Session, doc_ids: list[int]) -> None:
    if not doc_ids:
        return
    session.flush()
    session.execute(delete(SearchCodeRow).where(SearchCodeRow.doc_id.in_(doc_ids)))
    session.execute(delete(SearchShownRow).where(SearchShownRow.doc_id.in_(doc_ids)))
    gone = session.execute(
        delete(SearchDocRow)
        .where(SearchDocRow.id.in_(doc_ids))
        .returning(
            SearchDocRow.category, SearchDocRow.country, SearchDocRow.sectors, SearchDocRow.trl
        )
    )
    _count(session, Counter(tuple(row) for row in gone), -1)
    mark = session.scalars(insert(SearchRemovalRow).returning(SearchRemovalRow.id), [{}]).one()
    session.execute(delete(SearchRemovalRow).where(SearchRemovalRow.id < mark - 100))
    key = "rowid" if session.get_bind().dialect.name == "sqlite" else "doc_id"
    marks = ", ".join(f":d{i}" for i in range(len(doc_ids)))
    session.execute(
        text(f"DELETE FROM {FTS_TABLE} WHERE {key} IN ({marks})"),  # noqa: S608 - bound marks
        {f"d{i}": d for i, d in enumerate(doc_ids)},
    )


def put(session: Session, doc: SearchDoc, *, replace: bool = True) -> None:
    """Index ``doc``, replacing what was indexed of the same listing."""
    if replace:
        remove(session, doc.owner, [doc.shown["id"]])
    put_many(session, [doc])


def put_many(session: Session, docs: list[SearchDoc]) -> None:
    """Index ``docs`` (not indexed yet) in four statements, whatever their number."""
    if not docs:
        return
    ids = session.scalars(
        insert(SearchDocRow).returning(SearchDocRow.id, sort_by_parameter_order=True),
        [d.values() for d in docs],
    ).all()
    session.execute(
        insert(SearchShownRow),
        [{"doc_id": i, "shown": d.shown_json()} for i, d in zip(ids, docs, strict=True)],
    )
    _count(session, Counter(_facet_key(d.values()) for d in docs), 1)
    codes = [{"doc_id": i, "code": c} for i, d in zip(ids, docs, strict=True) for c in d.codes()]
    if codes:
        session.execute(insert(SearchCodeRow), codes)
    words = [(i, *d.words()) for i, d in zip(ids, docs, strict=True)]
    if session.get_bind().dialect.name == "sqlite":
        session.execute(
            text(f"INSERT INTO {FTS_TABLE} (rowid, title, body) VALUES (:id, :t, :b)"),
            [{"id": i, "t": " ".join(t), "b": " ".join(b)} for i, t, b in words],
        )
    else:
        session.execute(
            text(f"INSERT INTO {FTS_TABLE} (doc_id, doc) VALUES (:id, CAST(:v AS tsvector))"),
            [{"id": i, "v": _tsvector(t, b)} for i, t, b in words],
        )


def _facet_key(values: dict[str, Any]) -> FacetKey:
    return (values["category"], values["country"], values["sectors"], values["trl"])


def _count(session: Session, counted: Counter[Any], sign: int) -> None:
    """Add ``counted`` documents (by facet value) to search_counts, as new rows."""
    if not counted:
        return
    rows = [
        {"category": c, "country": k, "sectors": s, "trl": t, "n": sign * n}
        for (c, k, s, t), n in counted.items()
    ]
    ids = session.scalars(
        insert(SearchCountRow).returning(SearchCountRow.id, sort_by_parameter_order=True), rows
    ).all()
    last = max(ids)
    if last // FOLD_EVERY != (last - len(ids)) // FOLD_EVERY:
        fold_counts(session, last)


def fold_counts(session: Session, upto: int | None = None) -> None:
    """Fold search_counts' rows (up to id ``upto``) into one row per facet value. Only the
    rows this transaction deletes are summed, so two writers folding at once (PostgreSQL)
    never count a row twice; there one folds and the others skip it."""
    if session.get_bind().dialect.name == "postgresql":
        got = session.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": _FOLD_LOCK})
        if not got:
            return
    stmt = delete(SearchCountRow)
    if upto is not None:
        stmt = stmt.where(SearchCountRow.id <= upto)
    gone = session.execute(
        stmt.returning(
            SearchCountRow.category,
            SearchCountRow.country,
            SearchCountRow.sectors,
            SearchCountRow.trl,
            SearchCountRow.n,
        )
    )
    sums: Counter[FacetKey] = Counter()
    for category, country, sectors, trl, n in gone:
        sums[(category, country, sectors, trl)] += n
    rows = [
        {"category": c, "country": k, "sectors": s, "trl": t, "n": n}
        for (c, k, s, t), n in sums.items()
        if n
    ]
    if rows:
        session.execute(insert(SearchCountRow), rows)


def member_country(session: Session, origin: str) -> str:
    member = session.get(MemberRow, origin)
    return member.country if member is not None else "?"


def put_summaries(
    session: Session,
    origin: str,
    changed: dict[str, dict[str, Any] | None],
    *,
    replaced: Iterable[str] | None = None,
) -> None:
    """Index what a page changed of ``origin``'s summaries: listing id -> the summary's
    ``listing`` now held, or None when purged. Each is shown by its owner's public view
    only; a summary without one leaves search. ``replaced``: the ids that may be indexed
    already (held before the page); None takes every id of ``changed`` as such. A page
    of new listings thus costs no look-up of rows that cannot be there."""
    remove(session, origin, changed if replaced is None else replaced)
    docs = []
    country: str | None = None
    for listing in changed.values():
        shown = public_listing(listing) if listing and listing.get("public") else None
        if shown is not None:
            if country is None:
                country = member_country(session, origin)
            docs.append(SearchDoc(origin, shown, country))
    put_many(session, docs)
