"""``best_matches``: the best pairs of all the top lists, explained only for those, and
the same pairs, in the same order, as sorting every list ``top_matches`` gives."""

from __future__ import annotations

import pytest

from node.matching import Match, Matcher
from tests.matching.helpers import NOW, sample_views


@pytest.fixture(scope="module")
def matcher() -> Matcher:
    m = Matcher(NOW)
    m.upsert_many(sample_views())
    return m


def every_pair_sorted(m: Matcher, k: int) -> list[Match]:
    return sorted(
        (x for found in m.top_matches(k).values() for x in found),
        key=lambda x: (-x.score, x.request),
    )


@pytest.mark.parametrize("k", [1, 3, 10])
def test_the_best_pairs_are_those_of_every_list_sorted(matcher: Matcher, k: int) -> None:
    everything = every_pair_sorted(matcher, k)
    assert len(everything) > 50, "the sample has many pairs"
    for limit in (1, 7, 50, len(everything), len(everything) + 10):
        assert matcher.best_matches(limit, k=k) == everything[:limit], limit
    assert matcher.best_matches(0, k=k) == []


def test_pairs_tied_at_the_cut_are_ranked_as_every_list_ranks_them() -> None:
    # Fifteen copies of one request under other ids: every score comes fifteen times.
    views = sample_views()
    with_matches = Matcher(NOW)
    with_matches.upsert_many(views)
    owner, request_id = next(iter(with_matches.top_matches(5)))  # a request with matches
    request = next(v for o, v in views if (o, v["id"]) == (owner, request_id))
    copies = [(owner, {**request, "id": f"{request['id']}-{i:02d}"}) for i in range(15)]
    m = Matcher(NOW)
    m.upsert_many([(o, v) for o, v in views if v["category"] != "tech_request"] + copies)
    everything = every_pair_sorted(m, 5)
    assert len(everything) == 15 * 5 and len({x.score for x in everything}) == 5
    for limit in range(1, len(everything) + 1, 4):
        assert m.best_matches(limit, k=5) == everything[:limit], limit
