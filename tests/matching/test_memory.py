"""The matcher's temporary memory: a full re-match scores its pairs in bounded blocks, so
its peak does not grow with requests x candidates (the hub's matching worker peaked at
450 MB over 3,500 listings when a block was 2,000,000 pairs)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from node.matching import Matcher, bulk, index, ivf
from node.matching import matcher as matcher_module
from tests.matching.helpers import NOW, offer, request, sample_views

WORDS = ["solar", "pump", "rice", "drying", "water", "filter", "cassava", "biogas", "kiln", "mill"]


def _listings(n: int) -> list[tuple[str, dict[str, object]]]:
    out: list[tuple[str, dict[str, object]]] = []
    for i in range(n):
        a, b, c = WORDS[i % 10], WORDS[(i // 10) % 10], WORDS[(i // 100) % 10]
        out.append(("aa", request(f"r{i}", f"{a} {b} {c} needed", f"need {c} {a} {i}")))
        out.append(("bb", offer(f"o{i}", f"{b} {c} {a} machine", f"offer {a} {b} {i}")))
    return out


def test_exact_top_peak_is_bounded_by_its_block() -> None:
    m = Matcher(NOW)  # lexical: the pairs' own temporaries, no model
    m.upsert_many(_listings(1_000))
    pairs = len(m.stores["request"].live_slots()) * len(m.stores["offer"].live_slots())
    assert pairs == 1_000_000 and pairs <= m.exact_pairs  # one exact table, 10 blocks
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        top = m.top_matches(10)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(top) == 1_000 and all(len(found) == 10 for found in top.values())
    # ~220 bytes per pair of a block; one block of all 1,000,000 pairs traced ~200 MB.
    assert bulk.BLOCK_PAIRS * 220 < 40_000_000
    assert peak < 60_000_000, f"re-match peak {peak / 1e6:.0f} MB"


def test_shortlist_probes_cut_in_rows_give_the_same_tops(monkeypatch: pytest.MonkeyPatch) -> None:
    m = Matcher(NOW)
    m.upsert_many(sample_views())
    rs, cs = m.stores["request"], m.stores["offer"]
    live = rs.live_slots()
    whole_slots, whole_scores = ivf.shortlist_top(rs, live, cs, 10, NOW)
    assert np.isfinite(whole_scores).sum() > 100
    monkeypatch.setattr(ivf, "PROBE_PAIRS", 7)  # a row or two per piece
    cut_slots, cut_scores = ivf.shortlist_top(rs, live, cs, 10, NOW)
    np.testing.assert_allclose(cut_scores, whole_scores, rtol=1e-5)
    assert (cut_slots == whole_slots).mean() > 0.99  # ties may swap places


def test_shortlist_peak_with_listings_alike_is_bounded() -> None:
    """Listings alike fall in one cluster that every request probes: 2,500 x 2,500 pairs
    were one matrix (~100 MB traced with its negation and partition indices)."""
    m = Matcher(NOW)
    m.upsert_many(
        [("aa", request(f"r{i}", "solar rice dryer", "a solar rice dryer")) for i in range(2_500)]
        + [("bb", offer(f"o{i}", "solar rice dryer", "solar dryer for rice")) for i in range(2_500)]
    )
    rs, cs = m.stores["request"], m.stores["offer"]
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        slots, _ = ivf.shortlist_top(rs, rs.live_slots(), cs, 10, NOW)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (slots >= 0).all()
    assert peak < 60_000_000, f"shortlist peak {peak / 1e6:.0f} MB"


def test_a_shortlist_ranking_keeps_no_whole_store_matrix() -> None:
    """The bulk ranking builds each side's weighed matrix for its threads and drops it
    when done: kept, it was a second copy of every listing's terms in the worker."""
    m = Matcher(NOW)
    m.upsert_many(_listings(300))
    rs, cs = m.stores["request"], m.stores["offer"]
    slots, _ = ivf.shortlist_top(rs, rs.live_slots(), cs, 10, NOW)
    assert (slots >= 0).all()
    for space in ("text", "concepts", "ngrams"):
        assert rs.sparse[space].built() is None and cs.sparse[space].built() is None
    # Explaining a few pairs afterwards weighs their rows alone.
    assert len(m.best_matches(5)) == 5
    assert all(rs.sparse[s].built() is None for s in ("text", "concepts", "ngrams"))


def test_released_caches_are_rebuilt_with_the_same_answers() -> None:
    """``release_caches`` drops every weighed matrix, the one-against-all postings too
    (~200 MB at 200,000 listings, which the hub's worker held between passes and under a
    bulk ranking's own view); the next question rebuilds them, with the same answers."""
    m = Matcher(NOW, exact_pairs=0)
    m.upsert_many(_listings(300))
    refs = [("aa", f"r{i}") for i in range(0, 300, 7)] + [("bb", f"o{i}") for i in range(5)]
    before = {ref: m.matches_for(*ref) for ref in refs}
    rows = [rows for store in m.stores.values() for rows in store.sparse.values()]
    assert any(r._csc is not None for r in rows)  # noqa: SLF001 - what is held
    m.release_caches()
    assert all(r._csc is None and r._tail is None and r.built() is None for r in rows)  # noqa: SLF001
    assert {ref: m.matches_for(*ref) for ref in refs} == before
    m.release_caches()
    top = m.top_matches()  # a bulk ranking drops the postings before it makes its view
    assert top and all(r._csc is None for r in rows)  # noqa: SLF001


def test_a_shortlist_ranking_builds_no_whole_store_matrix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The sketches weigh their rows in blocks; the exact rescoring reads weighed views
    over the candidates' stored rows, one space's at a time, dropped after, and weighs
    the requests' rows a chunk at a time (no view of them). Whole-store matrices (a copy
    of the column ids too, and their build's temporaries) held the worker's first match
    list ~100 MB higher at 200,000 listings."""
    m = Matcher(NOW)
    m.upsert_many(_listings(300))
    rs, cs = m.stores["request"], m.stores["offer"]
    before = ivf.shortlist_top(rs, rs.live_slots(), cs, 10, NOW)
    spaces = ("text", "concepts", "ngrams")
    built: list[int] = []
    held: list[int] = []
    real_matrix, real_view = index.SparseRows.matrix, index.SparseRows.weighed_view

    def matrix(self: index.SparseRows) -> object:
        built.append(len(self))
        return real_matrix(self)

    def view(self: index.SparseRows) -> object:
        out = real_view(self)
        held.append(sum(st.sparse[s]._view is not None for st in (rs, cs) for s in spaces))
        return out

    monkeypatch.setattr(index.SparseRows, "matrix", matrix)
    monkeypatch.setattr(index.SparseRows, "weighed_view", view)
    slots, scores = ivf.shortlist_top(rs, rs.live_slots(), cs, 10, NOW)
    assert (slots >= 0).all() and built == []
    assert len(held) == 3 and max(held) == 1
    assert not any(rs.sparse[s]._view is not None for s in spaces)
    assert not any(st.sparse[s]._view is not None for st in (rs, cs) for s in spaces)
    assert np.array_equal(slots, before[0]) and np.array_equal(scores, before[1])
    # The requests' rows weighed a chunk at a time give the pairs' exact scores.
    ri = np.repeat(rs.live_slots(), slots.shape[1])
    exact, _ = bulk.rescore(rs, ri, cs, slots.ravel(), NOW)
    assert np.array_equal(exact, scores.ravel())


def test_the_weighed_view_is_the_whole_matrix_over_the_stored_rows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Same numbers as ``matrix()``, weighed a few rows at a time, and the stored
    column ids themselves, not a copy (half the bytes of a whole-store matrix)."""
    monkeypatch.setattr(index, "VIEW_ROWS", 7)
    m = Matcher(NOW)
    m.upsert_many(_listings(200))
    for space in ("text", "concepts", "ngrams"):
        rows = m.stores["offer"].sparse[space]
        view, whole = rows.weighed_view(), rows.matrix()
        assert whole.nnz > 0 and view.shape == whole.shape
        assert np.array_equal(view.indptr, whole.indptr)
        assert np.array_equal(view.indices, whole.indices)
        assert np.array_equal(view.data, whole.data)
        assert np.shares_memory(view.indices, rows._indices.view)
        rows.release()
        assert rows.built() is None and rows._view is None


def test_rowwise_dots_cut_in_small_chunks_gives_the_same_numbers() -> None:
    m = Matcher(NOW)
    m.upsert_many(_listings(200))
    a = m.stores["request"].sparse["ngrams"].matrix()
    b = m.stores["offer"].sparse["ngrams"].matrix()
    rng = np.random.default_rng(5)
    ai, bi = rng.integers(0, a.shape[0], 1_000), rng.integers(0, b.shape[0], 1_000)
    whole = index.rowwise_dots(a, ai, b, bi, chunk=1_000)
    assert (whole > 0).sum() > 100
    assert np.array_equal(index.rowwise_dots(a, ai, b, bi, chunk=7), whole)


def test_release_memory_gives_freed_heap_back() -> None:
    from node.hub.match_worker import release_memory

    def rss_kb() -> int:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmRSS"))

    chunks = [bytearray(100_000) for _ in range(2_000)]  # 200 MB under the mmap threshold
    keep = chunks[-1]  # the top of the heap stays in use: only a trim frees below it
    del chunks
    before = rss_kb()
    assert release_memory()
    assert len(keep) == 100_000 and rss_kb() < before - 100_000


FRAGMENTS = """
import sys
import numpy as np
from node.hub.match_worker import fix_mmap_threshold
if sys.argv[1] == "fixed":
    assert fix_mmap_threshold()
def rss_kb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS"))
big = np.ones(20_000_000 // 8)  # mapped, then freed: glibc raises its threshold past it
del big
parts, kept = [], []
for _ in range(150):  # 150 MB of 1 MB temporaries, each with a small block kept after it
    parts.append(np.ones(1_000_000 // 8))
    kept.append(np.ones(100))
before = rss_kb()
del parts
print(before - rss_kb())
"""


def test_a_pass_s_large_temporaries_go_back_to_the_system_when_freed() -> None:
    """The worker fixes glibc's mmap threshold (``fix_mmap_threshold``): blocks of 1 MB
    freed after a bigger one was are given back at once, without a trim."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", FRAGMENTS, "fixed"], capture_output=True, text=True, check=True
    )
    assert int(out.stdout) > 140_000, out.stdout  # kB given back


def test_the_code_model_s_refit_gives_its_freed_heap_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """Its fit and inference free their temporaries into the heap, which stayed under the
    ranking that follows (~30 MB at 200,000 listings): each refit, and only a refit,
    trims it."""
    from node.matching import matcher as matcher_module

    trims: list[int] = []

    def counting_trim() -> bool:
        trims.append(1)
        return True

    monkeypatch.setattr(matcher_module, "trim_heap", counting_trim)
    m = Matcher(NOW)
    m.upsert_many(_listings(200))
    first = m.code_model()
    assert m.code_model() is first and len(trims) == 1  # held: nothing freed, no trim
    m.upsert_many([("bb", offer(f"new{i}", "solar kiln", "offer kiln")) for i in range(20)])
    assert m.code_model() is not first and len(trims) == 2


def test_a_matcher_with_a_model_holds_no_ngram_space() -> None:
    """Character n-grams are a space of their own only when matching lexically: beside a
    model they added nothing on the dev split and held ~725 of 1,953 bytes a listing."""
    from tests.matching.test_cli_semantic import HashingEncoder

    lexical, semantic = Matcher(NOW), Matcher(NOW, encoder=HashingEncoder())
    for m in (lexical, semantic):
        m.upsert_many(_listings(50))
    assert "ngrams" in lexical.vocabs and len(lexical.vocabs["ngrams"].terms) > 20
    assert set(semantic.vocabs) == {"text", "concepts"}
    for store in semantic.stores.values():
        assert set(store.sparse) == {"text", "concepts"}
    request = ("aa", "r3")
    found = semantic.matches_for(*request)
    assert found and all("ngrams" not in m.components for m in found)
    assert any("ngrams" in m.components for m in lexical.matches_for(*request))


def test_a_bulk_ranking_gives_its_freed_heap_back_while_it_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A ranking's small temporaries come from free chunks across the heap, each page
    resident again once touched: the heap is trimmed every ``RANKING_TRIM_S`` while the
    ranking runs, and no longer once it is done."""
    import threading
    import time

    from node.services import heap

    trims: list[float] = []

    def counting_trim() -> bool:
        trims.append(time.monotonic())
        return True

    def ranking(*args: object) -> tuple[object, object]:
        deadline = time.monotonic() + 10
        while len(trims) < 3:  # trimmed meanwhile, more than once
            assert time.monotonic() < deadline, "no trim while the ranking ran"
            time.sleep(0.001)
        return np.zeros((0, 10), np.int64), np.zeros((0, 10), np.float32)

    monkeypatch.setattr(heap, "trim_heap", counting_trim)
    monkeypatch.setattr(ivf, "RANKING_TRIM_S", 0.001)
    monkeypatch.setattr(ivf, "_shortlist_top", ranking)
    m = Matcher(NOW)
    m.upsert_many(_listings(20))
    rs, cs = m.stores["request"], m.stores["offer"]
    ivf.shortlist_top(rs, rs.live_slots(), cs, 10, NOW)
    assert not [t for t in threading.enumerate() if t.name == "heap-trim"]  # stopped, joined


def test_the_matching_worker_s_blas_runs_one_thread() -> None:
    """The matcher's bulk ranking runs ``ivf.THREADS`` threads of its own; the worker holds
    the BLAS library to one thread each (``one_blas_thread``), not one per core more."""
    import subprocess
    import sys

    code = (
        "from node.hub.match_worker import one_blas_thread\n"
        "from threadpoolctl import threadpool_info\n"
        "one_blas_thread()\n"
        "print(sorted({p['num_threads'] for p in threadpool_info() if p['user_api'] == 'blas'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[1]", out.stdout


def test_terms_of_removed_listings_do_not_pile_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """A member published and withdrew listings of fresh words again and again: their
    terms stayed in the vocabularies (10.6 million, 1.8 GB) since too few slots were dead
    to compact. Once dead terms are many and over half of a space's, it compacts."""
    monkeypatch.setattr(matcher_module, "DEAD_TERMS_MIN", 2_000)
    m = Matcher(NOW)
    m.upsert_many(sample_views()[:40])
    base = {space: len(vocab.terms) for space, vocab in m.vocabs.items()}
    words = iter(f"w{n:07d}x" for n in range(10**7))
    for batch in range(30):
        ids = [f"kh-off-{batch}-{i}" for i in range(20)]
        for lid in ids:
            text = " ".join(next(words) for _ in range(50))
            m.upsert("kh", offer(lid, text, text))
        for lid in ids:
            m.remove("kh", lid)
    text_terms = len(m.vocabs["text"].terms)
    assert text_terms < base["text"] + 2 * 2_000 + 50 * 20, (base, text_terms)  # 30,000 seen
    assert m.vocabs["text"].dead_terms <= max(2_000, text_terms // 2)
    fresh = Matcher(NOW)
    fresh.upsert_many(sample_views()[:40])

    def tops(held: Matcher) -> dict[object, list[object]]:
        return {req: [x.candidate for x in found] for req, found in held.top_matches(3).items()}

    assert tops(m) == tops(fresh)
