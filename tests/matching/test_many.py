"""Many listings matched at once (the hub's re-match): the same answers as one at a time
and as scoring every pair, in whatever blocks they are cut into."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.matching import Matcher, bulk, reftable
from node.matching import matcher as matcher_module
from node.matching.bulk import pair_sims
from node.matching.scoring import Ints, Scored, grid_scores, score_pairs
from node.matching.semantic import CachedEncoder
from node.matching.store import KindStore
from tests.matching.helpers import NOW, offer, request, sample_views
from tests.matching.test_cli_semantic import HashingEncoder


def _sample(encoder: CachedEncoder | None = None) -> Matcher:
    m = Matcher(NOW, encoder=encoder)
    m.upsert_many(sample_views())
    return m


def _brute(m: Matcher, k: int = 10) -> dict[tuple[str, str], list[tuple[tuple[str, str], float]]]:
    """Every listing's best ``k``, from the scores of every (request, candidate) pair."""
    rs = m.stores["request"]
    found: dict[tuple[str, str], list[tuple[float, tuple[str, str]]]] = {}
    for other in ("offer", "expert"):
        cs = m.stores[other]
        r_slots, c_slots = rs.live_slots(), cs.live_slots()
        ri, ci = np.repeat(r_slots, len(c_slots)), np.tile(c_slots, len(r_slots))
        scored = _score(rs, ri, cs, ci)
        for j in np.flatnonzero(scored.allowed):
            req, cand = rs.features[ri[j]].ref, cs.features[ci[j]].ref
            score = round(float(scored.score[j]), 4)
            found.setdefault(req, []).append((score, cand))
            found.setdefault(cand, []).append((score, req))
    out = {}
    for ref, entries in found.items():
        entries.sort(key=lambda f: -f[0])
        out[ref] = [(r, s) for s, r in entries[:k]]
    return out


def _score(rs: KindStore, ri: Ints, cs: KindStore, ci: Ints) -> Scored:
    sims, semantic = pair_sims(rs, ri, cs, ci)
    return score_pairs(rs, ri, cs, ci, sims, NOW, semantic)


@pytest.mark.parametrize("grid_pairs", [7, 250_000])  # candidates scored in slices, or at once
@pytest.mark.parametrize("pairs_per_block", [500, 1_000_000])
def test_many_at_once_equals_scoring_every_pair(
    monkeypatch: pytest.MonkeyPatch, pairs_per_block: int, grid_pairs: int
) -> None:
    monkeypatch.setattr(matcher_module, "MANY_PAIRS", pairs_per_block)
    monkeypatch.setattr(bulk, "GRID_PAIRS", grid_pairs)
    m = _sample()
    refs = [ref for store in m.stores.values() for ref in store.slot_of]
    got = m.matches_for_many(refs)
    assert set(got) == set(refs)
    brute = _brute(m)
    for ref in refs:
        mine = [(x.candidate if ref == x.request else x.request, x.score) for x in got[ref]]
        expect = brute.get(ref, [])
        if not expect:
            assert mine == [], ref
            continue
        assert [s for _, s in mine] == [s for _, s in expect], ref
        assert {r for r, s in mine if s > expect[-1][1]} == {
            r for r, s in expect if s > expect[-1][1]
        }, ref


def test_with_embeddings_many_at_once_equals_scoring_every_pair(
    e5_static: CachedEncoder,
) -> None:
    m = _sample(e5_static)
    assert m.stores["request"].dense is not None
    refs = [ref for store in m.stores.values() for ref in store.slot_of]
    got = m.matches_for_many(refs)
    brute = _brute(m)
    for ref in refs:
        mine = [x.score for x in got[ref]]
        assert mine == [s for _, s in brute.get(ref, [])], ref
        assert all("semantic" in x.components for x in got[ref])


def test_many_at_once_equals_one_at_a_time_with_explanations() -> None:
    m = _sample()
    refs = [ref for store in m.stores.values() for ref in list(store.slot_of)[:5]]
    together = m.matches_for_many(refs)
    for ref in refs:
        assert together[ref] == m.matches_for(*ref)


def test_unknown_expired_and_repeated_listings() -> None:
    m = Matcher(NOW)
    m.upsert("cn", offer("o1", "Solar dryer for cassava chips"))
    m.upsert("la", request("r1", "Dry cassava chips"))
    m.upsert("la", request("old", "Dry cassava chips", expires=NOW - 1))
    got = m.matches_for_many([("la", "r1"), ("la", "r1"), ("xx", "nope"), ("la", "old")])
    assert [x.candidate for x in got[("la", "r1")]] == [("cn", "o1")]
    assert got[("xx", "nope")] == [] and got[("la", "old")] == []
    assert m.matches_for_many([]) == {}


def test_the_grid_scores_every_pair_as_score_pairs_does() -> None:
    m = _sample()
    rs, cs = m.stores["request"], m.stores["offer"]
    r_slots, c_slots = rs.live_slots(), cs.live_slots()
    ri, ci = np.repeat(r_slots, len(c_slots)), np.tile(c_slots, len(r_slots))
    sims, semantic = pair_sims(rs, ri, cs, ci)
    scored = score_pairs(rs, ri, cs, ci, sims, NOW, semantic)
    expect = np.where(scored.allowed, scored.score, -np.inf).reshape(len(r_slots), -1)
    grid = grid_scores(
        rs,
        r_slots,
        cs,
        c_slots,
        {space: v.reshape(len(r_slots), -1) for space, v in sims.items()},
        None,
        NOW,
    )
    assert (np.isinf(grid) == np.isinf(expect)).all()
    assert np.isinf(expect).any(), "the sample has excluded pairs"
    finite = np.isfinite(expect)
    assert np.allclose(grid[finite], expect[finite], atol=1e-5)


def test_compaction_keeps_the_explanations() -> None:
    m = _sample()
    refs = list(m.stores["request"].slot_of)[:20]
    before = m.matches_for_many(refs)
    m.compact()
    assert m.matches_for_many(refs) == before


def test_matches_found_without_explanations_are_explained_later() -> None:
    m = _sample()
    refs = list(m.stores["request"].slot_of)[:10] + list(m.stores["offer"].slot_of)[:10]
    bare = m.matches_for_many(refs, explain=False)
    full = m.matches_for_many(refs)
    assert any(x.shared_terms for ms in full.values() for x in ms), "the sample shares terms"
    assert all(not x.shared_terms and not x.shared_codes for ms in bare.values() for x in ms)
    assert {ref: [m.explain(x) for x in ms] for ref, ms in bare.items()} == full
    gone = next(x for ms in bare.values() for x in ms)
    m.remove(*gone.candidate)
    assert m.explain(gone) == gone  # a listing gone meanwhile: left as it was


@pytest.mark.parametrize("collide", [False, True])
def test_code_set_table_extended_one_listing_at_a_time_equals_a_fresh_one(
    monkeypatch: pytest.MonkeyPatch, collide: bool
) -> None:
    """The table of distinct coded columns grows with each added listing instead of being
    sorted again; it must group the slots exactly as one worked out from scratch, also
    when every set has the same hash (sets are told apart by their bytes)."""
    if collide:
        monkeypatch.setattr(reftable, "_digest", lambda key: 0)
    views = sample_views()
    m = Matcher(NOW)
    m.upsert_many(views[: len(views) // 2])
    for store in m.stores.values():  # the tables exist before the rest arrive one by one
        _groups(store, np.arange(len(store.features), dtype=np.int64))
    for owner, view in views[len(views) // 2 :]:
        m.upsert(owner, view)
    for owner, view in views:  # same codes again under other ids: sets already seen
        m.upsert(owner, {**view, "id": f"{view['id']}-again"})
    extended = 0
    for store in m.stores.values():
        slots = np.arange(len(store.features), dtype=np.int64)
        if store.distinct is not None and store.distinct[0][0] < len(slots):
            extended += 1
        grown = _groups(store, slots)
        store.distinct = None
        assert grown == _groups(store, slots)
    # The offers' and experts' tables were extended (the requests' may be made again when
    # the sector model is fitted again and every request re-inferred).
    assert extended >= 2


@pytest.mark.parametrize(("collide", "bound"), [(False, None), (True, None), (False, 3)])
def test_code_set_table_follows_vectors_and_inferred_codes_that_arrive_later(
    monkeypatch: pytest.MonkeyPatch, collide: bool, bound: int | None
) -> None:
    """A listing's coded columns change in place when its vector arrives (and a request's
    inferred codes with it), when it is removed and when it expires: the table of distinct
    sets must then count it with the listings that have its columns now, and every set's
    representative must have that set's columns (the grid reads the representative's),
    without making the table again (``bound``: it is made again past that many changes or
    sets left without a member, and stays right)."""
    from node.matching import scoring
    from node.matching import store as store_module
    from node.matching.scoring import _coded_columns, _distinct

    if collide:
        monkeypatch.setattr(reftable, "_digest", lambda key: 0)
    if bound is not None:
        for module in (scoring, store_module):
            monkeypatch.setattr(module, "REKEY_MIN", bound)
    m = Matcher(NOW, encoder=HashingEncoder(), defer_encoding=True)
    views = sample_views()
    # Twins share their coded columns (a set of two) until one of them has its vector.
    m.upsert_many(views + [(owner, {**view, "id": f"{view['id']}-twin"}) for owner, view in views])
    m.matches_for_many(list(m.stores["request"].slot_of)[:5])  # code model and tables made
    tables = {kind: store.distinct_ids for kind, store in m.stores.items()}
    assert all(tables.values())

    def check(now: int) -> None:
        for store in m.stores.values():
            slots = np.arange(len(store.features), dtype=np.int64)  # removed ones too
            inverse, reps = _distinct(store, slots, now)
            cols = _coded_columns(store, store.expires.view <= now, slice(0, len(store.features)))
            assert (cols[slots] == cols[reps[inverse]]).all()
            # Sets left without a member: made again past the bound (one read's changes,
            # themselves within it, may have just left that many more).
            limit = max(store_module.REKEY_MIN, len(slots) * store_module.REKEY_SHARE)
            assert store.orphans <= 2 * limit

    # Listings added after the table was made (requests get their inferred codes at once,
    # many in one batch) extend it, whatever their number.
    m.upsert_many([(owner, {**view, "id": f"{view['id']}-late"}) for owner, view in views])
    check(NOW)
    assert {kind: store.distinct_ids for kind, store in m.stores.items()} == tables
    while m.pending_count():
        m.encode_pending(7)
        check(NOW)
    for owner, view in views[::9]:  # removed: no longer alive
        m.remove(owner, view["id"])
    check(NOW)
    expiries = np.sort(m.stores["offer"].expires.view)
    later = int(expiries[len(expiries) // 3])  # a third of the offers expired by then
    check(later)
    check(NOW)  # and back
    made_again = {kind: store.distinct_ids for kind, store in m.stores.items()} != tables
    assert made_again == (bound is not None)
    for store in m.stores.values():
        slots = store.live_slots()
        kept = _groups(store, slots)
        store.distinct = None
        assert kept == _groups(store, slots)


def _groups(store: KindStore, slots: Ints) -> set[frozenset[int]]:
    from node.matching.scoring import _distinct

    inverse, reps = _distinct(store, slots, NOW)
    groups: dict[int, set[int]] = {}
    for slot, index in zip(slots.tolist(), inverse.tolist(), strict=True):
        groups.setdefault(index, set()).add(slot)
    return {frozenset(g) for g in groups.values()}


@given(st.lists(st.integers(0, 40), max_size=200), st.integers(0, 20))
def test_distinct_sets_are_renumbered_as_unique_numbers_them(ids: list[int], spare: int) -> None:
    """``_renumbered`` (marks, not a sort) gives what ``np.unique(..., return_inverse=True)``
    gives: the ids used, in order, and each one's place among them."""
    from node.matching.scoring import _renumbered

    values = np.array(ids, dtype=np.int64)
    local, used = _renumbered(values, 41 + spare)
    want_used, want_local = np.unique(values, return_inverse=True)
    assert used.tolist() == want_used.tolist()
    assert local.tolist() == want_local.reshape(-1).tolist()
    assert local.dtype == used.dtype == np.int64
