"""Public search costs the same whatever the number of hits (node.hub.search): without
words its counts are sums of ``search_counts``, which every write of search rows keeps
(and folds now and then) and which agree with the documents, expired ones left out; with
words, hits are counted up to COUNT_CAP (the total then says "at least") and ranked by
relevance in windows of the RANK_WINDOW newest, and paging still reaches every hit once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from node.hub import search, search_store
from node.hub.search import SearchQuery, _facets, _more_facets, _page
from node.hub.search_store import SearchDoc
from node.storage.db import make_engine, migrate
from node.storage.models import SearchCountRow
from tests.conftest import DatabaseUrlFactory

NOW = 1_800_000_000_000
COUNTRIES = ["TH", "VN", "MY"]
SECTORS = ["agrifood", "energy", "water"]
CATEGORIES = ["tech_offer", "tech_request"]


@pytest.fixture
def engine(database_url: DatabaseUrlFactory) -> Iterator[Engine]:
    made = make_engine(database_url("bounded"))
    migrate(made)
    yield made
    made.dispose()


def _doc(i: int, *, owner: str = "th", version: int = 1, word: str = "pump") -> SearchDoc:
    """Listing ``i``: the word in its title when i is odd, else in its summary only; it
    expired when i is a multiple of 7."""
    title = f"{word} station {i}" if i % 2 else f"station {i}"
    fields: dict[str, Any] = {
        "title": {"en": title},
        "summary": f"a {word} of model {i} v{version}",
        "country": COUNTRIES[i % 3],
        "sectors": [SECTORS[i % 3], *([SECTORS[(i + 1) % 3]] if i % 4 == 0 else [])],
    }
    if i % 5:
        fields["trl"] = 1 + i % 9
    shown = {
        "id": f"L{i}",
        "category": CATEGORIES[i % 2],
        "version": version,
        "updated": NOW - 1000,
        "expires": NOW - 1 if i % 7 == 0 else NOW + 10_000_000,
        "fields": fields,
        "rights": {},
        "public": True,
    }
    return SearchDoc(owner, shown, "TH")


def _expected(docs: dict[tuple[str, str], SearchDoc], q: SearchQuery) -> Counter[str]:
    """What the counts should be, from the documents themselves."""
    out: Counter[str] = Counter()
    for doc in docs.values():
        v = doc.values()
        sectors = v["sectors"].split("\n") if v["sectors"] else []
        if v["expires"] <= NOW:
            continue
        if q.category and v["category"] != q.category:
            continue
        if q.country and v["country"] != q.country.upper():
            continue
        if q.trl_min is not None and (v["trl"] is None or v["trl"] < q.trl_min):
            continue
        if q.sector and q.sector not in sectors:
            continue
        out["total"] += 1
        out[f"category:{v['category']}"] += 1
        out[f"country:{v['country']}"] += 1
        out.update(f"sector:{s}" for s in sectors)
        if v["trl"] is not None:
            out[f"trl:{v['trl']}"] += 1
    return out


def _found(session: Session, q: SearchQuery, dialect: str) -> Counter[str]:
    (total, facets), exact = _facets(session, q, dialect, NOW)
    assert exact
    out: Counter[str] = Counter({"total": total} if total else {})
    for name, counts in facets.items():
        out.update({f"{name}:{value}": n for value, n in counts.items()})
    trl = _more_facets(session, q, dialect, NOW)[1]["trl"]
    out.update({f"trl:{level}": n for level, n in trl.items()})
    return out


def test_counts_without_words_are_sums_kept_with_every_write(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(search_store, "FOLD_EVERY", 8)  # folded many times below
    dialect = engine.dialect.name
    held: dict[tuple[str, str], SearchDoc] = {}
    with Session(engine) as session, session.begin():
        docs = [_doc(i, owner=owner) for owner in ("th", "vn") for i in range(40)]
        search_store.put_many(session, docs)
        held.update({(d.owner, d.shown["id"]): d for d in docs})
    # Pages replace and purge listings, as a sync's apply does, one transaction each.
    for step in range(6):
        with Session(engine) as session, session.begin():
            changed: dict[str, dict[str, Any] | None] = {}
            for i in range(step * 5, step * 5 + 9):
                if i % 3 == 0:
                    changed[f"L{i}"] = None
                    held.pop(("th", f"L{i}"), None)
                else:
                    doc = _doc(i + 1, version=step + 2)  # other values: they move
                    listing = {**doc.shown, "id": f"L{i}", "public_view": doc.shown}
                    changed[f"L{i}"] = listing
                    held[("th", f"L{i}")] = SearchDoc("th", {**doc.shown, "id": f"L{i}"}, "TH")
            search_store.put_summaries(session, "th", changed)
    with Session(engine) as session:
        for q in [
            SearchQuery(),
            SearchQuery(category="tech_offer"),
            SearchQuery(country="vn", trl_min=4),
            SearchQuery(sector="energy"),
            SearchQuery(sector="water", category="tech_request", trl_min=2),
            SearchQuery(country="XX"),
        ]:
            assert _found(session, q, dialect) == _expected(held, q), q
        # Folded as it grew: a row per value, plus what came since the last fold.
        rows = session.scalar(select(func.count()).select_from(SearchCountRow))
        values = {(v["category"], v["country"], v["sectors"], v["trl"]) for v in
                  (d.values() for d in held.values())}  # fmt: skip
        assert rows is not None and rows <= len(values) + 2 * 8 + 20


def test_a_search_with_words_counts_up_to_a_cap_and_ranks_in_windows(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(search, "COUNT_CAP", 5)
    monkeypatch.setattr(search, "RANK_WINDOW", 4)
    dialect = engine.dialect.name
    with Session(engine) as session, session.begin():
        # 20 listings with the word (3 of them expired), 5 without.
        search_store.put_many(session, [_doc(i) for i in range(1, 21)])
        search_store.put_many(session, [_doc(i, word="valve") for i in range(21, 26)])
    live = [f"L{i}" for i in range(1, 21) if i % 7]
    with Session(engine) as session:
        (total, facets), exact = _facets(session, SearchQuery(q="pump"), dialect, NOW)
        assert (total, exact) == (5, False)  # at least 5
        assert sum(facets["category"].values()) == 5
        (total, _), exact = _facets(session, SearchQuery(q="valve"), dialect, NOW)
        assert (total, exact) == (4, True)  # L21 expired
        narrow = SearchQuery(q="pump", country="VN", category="tech_request")
        (total, _), exact = _facets(session, narrow, dialect, NOW)
        assert (total, exact) == (3, True)  # L1, L13, L19 (L7 expired)

        # Paging (3 a page, one more asked to tell whether a page follows) reaches every
        # hit once, across windows.
        ids: list[int] = []
        offset = 0
        while True:
            got = _page(session, SearchQuery(q="pump", offset=offset, limit=3), dialect, NOW)
            ids.extend(got[:3])
            if len(got) <= 3:
                break
            offset += 3
        assert len(ids) == len(set(ids)) == len(live)
        # Each window is the 4 newest hits left, ranked: a title word first.
        window = _page(session, SearchQuery(q="pump", limit=4), dialect, NOW)[:4]
        newest = sorted(ids, reverse=True)[:4]
        assert sorted(window) == sorted(newest)
        in_title = {i for i in newest if _listing(session, i) % 2}
        assert 0 < len(in_title) < 4
        assert set(window[: len(in_title)]) == in_title


def _listing(session: Session, doc_id: int) -> int:
    """The number of the listing of document ``doc_id``."""
    from node.storage.models import SearchDocRow

    row = session.get(SearchDocRow, doc_id)
    assert row is not None
    return int(row.listing_id[1:])


@pytest.mark.parametrize("rare_codes", [1, 10_000])
def test_an_ipc_prefix_finds_the_same_whether_its_codes_or_the_documents_drive(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, rare_codes: int
) -> None:
    """An IPC prefix with fewer than RARE_CODES codes drives the search from its codes,
    a common one walks the documents and probes their codes: the same hits either way."""
    monkeypatch.setattr(search, "RARE_CODES", rare_codes)
    dialect = engine.dialect.name
    docs = []
    for i in range(1, 31):
        doc = _doc(i)
        codes = (["A01B 1/00"] if i % 3 == 0 else []) + (
            ["A01C 3/00", "H02S"] if i % 5 == 0 else []
        )
        doc.shown["fields"]["ipc"] = codes
        docs.append(doc)
    with Session(engine) as session, session.begin():
        search_store.put_many(session, docs)
    for prefix in ("A01", "a01c", "H02S", "B99"):
        expected = {
            f"L{i}"
            for i, d in enumerate(docs, 1)
            if i % 7 and any(c.startswith(prefix.upper()) for c in d.codes())
        }
        for words in ("", "pump"):
            q = SearchQuery(q=words, ipc=prefix, limit=4)
            with Session(engine) as session:
                (total, _), exact = _facets(session, q, dialect, NOW)
                assert (total, exact) == (len(expected), True), (prefix, words)
                found: list[int] = []
                while True:
                    got = _page(session, q, dialect, NOW)
                    found.extend(got[:4])
                    if len(got) <= 4:
                        break
                    q = SearchQuery(q=words, ipc=prefix, limit=4, offset=q.offset + 4)
                assert {f"L{_listing(session, i)}" for i in found} == expected, (prefix, words)
                assert len(found) == len(set(found))


def test_the_ipc_facet_counts_only_the_classes_with_most_hits(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A listing may name any of 20,800 IPC classes; the marketplace's facet is the
    IPC_FACETS classes with most hits (ties by class), so that what is counted and kept
    per query does not grow with how many classes the hits name."""
    monkeypatch.setattr(search, "IPC_FACETS", 4)
    docs = []
    for k in range(10):  # class A0kB in k + 1 listings
        for j in range(k + 1):
            doc = _doc(100 * k + j + 1)
            doc.shown["expires"] = NOW + 10_000_000
            doc.shown["fields"]["ipc"] = [f"A{k:02d}B 1/{j + 1}"]
            docs.append(doc)
    with Session(engine) as session, session.begin():
        search_store.put_many(session, docs)
    with Session(engine) as session:
        for q in (SearchQuery(), SearchQuery(q="pump"), SearchQuery(ipc="A0")):
            ipc = _more_facets(session, q, engine.dialect.name, NOW)[1]["ipc"]
            assert ipc == {"A09B": 10, "A08B": 9, "A07B": 8, "A06B": 7}, (q, ipc)
