"""The matcher's per-listing memory: row values kept as codes give back the same float32
numbers (and the same once there are too many distinct values for codes), and a
listing's other values are columns, not objects of its own."""

from __future__ import annotations

import gc
import sys
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from node.matching import Matcher, index, reftable
from node.matching import store as store_module
from node.matching.features import extract
from node.matching.index import SparseRows, Vocabulary
from tests.matching.helpers import NOW, sample_views


def _rows(values: list[list[float]]) -> tuple[SparseRows, list[np.ndarray]]:
    vocab = Vocabulary()
    rows = SparseRows(vocab)
    given = []
    for i, vals in enumerate(values):
        weights = {f"t{i}-{j}": v for j, v in enumerate(vals)}
        cols, raw = vocab.add(weights)
        rows.append(cols, raw)
        given.append(raw.copy())
    return rows, given


def test_row_values_are_kept_exactly_as_codes_and_past_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(3)
    values = [[float(v) for v in rng.random(5)] for _ in range(6)]
    coded, given = _rows([[1.0, 1.6931472, 2.0986123], [1.0, 1.0]])
    assert coded._data.dtype == np.uint16
    assert all(np.array_equal(coded.row(i)[1], v) for i, v in enumerate(given))
    monkeypatch.setattr(index, "VALUE_CODES", 7)  # 30 distinct values: codes run out
    wide, given = _rows(values)
    assert wide._data.dtype == np.float32
    for i, v in enumerate(given):
        assert wide.row(i)[1].dtype == np.float32
        assert np.array_equal(wide.row(i)[1], v)
    built = wide.csr(0, 30)
    assert np.array_equal(built.data, np.concatenate(given))


def test_matches_do_not_depend_on_how_row_values_are_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    coded = Matcher(NOW)
    coded.upsert_many(sample_views())
    monkeypatch.setattr(index, "VALUE_CODES", 1)
    plain = Matcher(NOW)
    plain.upsert_many(sample_views())
    assert plain.stores["request"].sparse["text"]._data.dtype == np.float32
    assert coded.stores["request"].sparse["text"]._data.dtype == np.uint16
    assert coded.top_matches(10) == plain.top_matches(10)


def test_a_listing_read_back_from_the_columns_is_the_listing_without_its_terms() -> None:
    m = Matcher(NOW)
    views = sample_views()
    m.upsert_many(views)
    checked = 0
    for owner, view in views:
        feats = extract(owner, view, m.lexicon)
        if feats is None:
            continue
        held = m.features(*feats.ref)
        assert held == replace(feats, words={}, concepts={}, ngrams={}, text="", surface={}), (
            feats.ref
        )
        checked += 1
    assert checked > 100


def test_a_summary_with_integers_past_64_bits_is_held_and_the_columns_stay_aligned() -> None:
    """A member may write any integer into a version, an expiry or a TRL: the listing
    is held (its expiry past the columns' range is "never"), and every other listing's
    slot still names its own key, title and version."""
    views = sample_views()
    owner, offer = next((o, v) for o, v in views if v["category"] == "tech_offer")
    huge = {**offer, "id": "huge", "version": 10**30, "expires": 10**30}
    huge["fields"] = {**offer["fields"], "trl": 10**30}
    tiny = {**offer, "id": "tiny", "version": -(10**30), "expires": -(10**30)}
    m = Matcher(NOW)
    matched = sum(extract(o, v, m.lexicon) is not None for o, v in views)
    assert m.upsert_many([(owner, huge), (owner, tiny), *views]) == matched + 2
    held = m.features(owner, "huge")
    assert held is not None and held.version == 2**63 - 2 and held.expires == 2**63 - 2
    assert m.features(owner, "tiny") is not None
    store = m.stores["offer"]
    assert store.slot_of.numbered == store.alive.n == store.expires.n == store.versions.n
    for owner_, view in views:
        feats = extract(owner_, view, m.lexicon)
        if feats is not None and feats.kind == "offer":
            got = m.features(*feats.ref)
            assert got is not None and (got.title, got.version) == (feats.title, feats.version)


def test_listings_add_no_python_object_of_their_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keys, titles, versions and the rest are columns: thousands more listings (same
    words, so no new terms) leave the count of small Python objects nearly where it was.
    (The keys added since the last merge of a key table are a dict: kept small here.)"""
    monkeypatch.setattr(reftable, "MERGE_MIN", 16)
    views = sample_views()
    m = Matcher(NOW)
    m.upsert_many(views)

    def copies(round_: int) -> list[tuple[str, dict[str, Any]]]:
        return [(owner, {**view, "id": f"{view['id']}-c{round_}"}) for owner, view in views]

    m.upsert_many(copies(0))  # the arrays' first growth
    gc.collect()
    before, held = sys.getallocatedblocks(), len(m)
    for round_ in range(1, 9):
        m.upsert_many(copies(round_))
    gc.collect()
    added = len(m) - held
    assert added > 1_000
    assert (sys.getallocatedblocks() - before) / added < 0.2


def test_spellings_are_the_same_past_two_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    short = Matcher(NOW)
    short.upsert_many(sample_views())
    monkeypatch.setattr(store_module, "SPELLING_CODES", 5)
    wide = Matcher(NOW)
    wide.upsert_many(sample_views())
    assert short.stores["request"].spelled.dtype == np.uint16
    assert wide.stores["request"].spelled.dtype == np.int32
    refs = list(short.stores["request"].slot_of)
    assert [short.stores["request"].surface(i) for i in range(len(refs))] == [
        wide.stores["request"].surface(i) for i in range(len(refs))
    ]
    assert any(term for i in range(len(refs)) for term in wide.stores["request"].surface(i))


def test_spellings_survive_compaction() -> None:
    m = Matcher(NOW)
    m.upsert_many(sample_views())
    refs = list(m.stores["request"].slot_of)[:30]
    before = m.matches_for_many(refs)
    shown = [term for found in before.values() for x in found for term in x.shared_terms]
    stems = set(m.vocabs["text"].terms)
    assert any(term not in stems for term in shown)  # spelled as the request spells it
    assert m.stores["offer"].surface(0) == []  # candidates keep no spellings
    m.compact()
    assert m.matches_for_many(refs) == before


def test_weighing_the_rows_a_few_pairs_name_gives_the_whole_matrix_numbers() -> None:
    """Pairs scored without the whole-store matrix (``pair_sims`` after a bulk ranking
    dropped it) get bit for bit the cosines they get from it."""
    from node.matching.bulk import pair_sims

    m = Matcher(NOW)
    m.upsert_many(sample_views())
    rs, cs = m.stores["request"], m.stores["offer"]
    rng = np.random.default_rng(7)
    ri = rng.choice(rs.live_slots(), 300)
    ci = rng.choice(cs.live_slots(), 300)
    for space in ("text", "concepts", "ngrams"):
        rows = rs.sparse[space]
        rows.release()
        assert rows.built() is None
        picked = np.unique(ri)
        whole = rows.matrix()
        kept = rows.built()
        assert kept is not None and kept.nnz == whole.nnz
        part = rows.weighed(picked)
        assert np.array_equal(part.toarray(), whole[picked].toarray())
    built, _ = pair_sims(rs, ri, cs, ci)
    for space in ("text", "concepts", "ngrams"):
        rs.sparse[space].release()
        cs.sparse[space].release()
    compact, _ = pair_sims(rs, ri, cs, ci)
    assert all(rs.sparse[s].built() is None for s in ("text", "concepts", "ngrams"))
    for space in ("text", "concepts", "ngrams"):
        assert (built[space] > 0).sum() > 10
        assert np.array_equal(compact[space], built[space]), space


@pytest.mark.parametrize("codes", [True, False])
def test_postings_give_the_whole_matrix_numbers_in_three_quarters_of_its_bytes(
    codes: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one-against-all postings keep the stored value codes and a scale a row, not
    weighed float32 values; the columns a query reads are weighed then, bit for bit as
    ``matrix()`` weighs them (and as before once the codes ran out)."""
    if not codes:
        monkeypatch.setattr(index, "VALUE_CODES", 1)
    m = Matcher(NOW)
    m.upsert_many(sample_views())
    for space in ("text", "concepts", "ngrams"):
        rows = m.stores["offer"].sparse[space]
        assert (rows._data.dtype == np.uint16) is codes
        [(first, postings)] = rows.pieces()
        assert first == 0 and isinstance(postings, index.Postings)
        whole = rows.matrix().tocsc()
        cols = np.arange(whole.shape[1])[::-1]  # any order, as asked
        got = postings.columns(cols)
        assert got.dtype == np.float32
        assert np.array_equal(got.toarray(), whole[:, cols].toarray()), space
        held = postings.stored.indices.nbytes + postings.stored.data.nbytes
        weighed = whole.indices.nbytes + whole.data.nbytes
        assert held == (0.75 if codes else 1.0) * weighed, space
