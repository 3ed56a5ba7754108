"""Encoding in the background (``Matcher(defer_encoding=True)``): listings are matched
lexically at once, and once ``encode_pending`` has given every listing its vector, the
matcher answers exactly as one that encoded each listing on arrival."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from node.matching import Matcher
from node.matching.features import Ref
from node.matching.match import Match
from tests.matching.helpers import NOW, sample_views
from tests.matching.test_cli_semantic import HashingEncoder


def _lists(m: Matcher, refs: list[Ref]) -> dict[Ref, list[tuple[Ref, Ref, float]]]:
    def row(match: Match) -> tuple[Ref, Ref, float]:
        return (match.request, match.candidate, round(float(match.score), 5))

    return {ref: [row(x) for x in m.matches_for(*ref, k=10)] for ref in refs}


def _top(m: Matcher) -> dict[Ref, list[tuple[Ref, float]]]:
    return {
        ref: [(x.candidate, round(float(x.score), 5)) for x in found]
        for ref, found in m.top_matches(k=10).items()
    }


def _views() -> list[tuple[str, dict[str, Any]]]:
    return sample_views()


def _same(a: dict[Ref, list[tuple[Ref, float]]], b: dict[Ref, list[tuple[Ref, float]]]) -> bool:
    """The same top lists, but for float32 rounding: a list kept incrementally and one
    computed afresh may differ in the last digit, and so swap near-ties."""
    if a.keys() != b.keys():
        return False
    for ref, found in a.items():
        other = b[ref]
        if len(found) != len(other):
            return False
        for (c1, s1), (c2, s2) in zip(found, other, strict=True):
            if abs(s1 - s2) > 2e-4:
                return False
            if c1 != c2 and not any(c == c1 and abs(s - s1) <= 2e-4 for c, s in other):
                return False
    return True


def test_before_encoding_the_matcher_is_lexical_and_after_it_as_if_encoded_on_arrival() -> None:
    views = _views()
    lexical = Matcher(NOW, ngrams=False)  # a model's matcher holds no n-gram space
    eager = Matcher(NOW, encoder=HashingEncoder())
    deferred = Matcher(NOW, encoder=HashingEncoder(), defer_encoding=True)
    for m in (lexical, eager, deferred):
        assert m.upsert_many(views) > 100
    refs = sorted(deferred.pending_refs())
    assert len(refs) == len(deferred)  # every listing waits for its vector
    assert _lists(deferred, refs) == _lists(lexical, refs)
    assert _top(deferred) == _top(lexical)  # cached top lists, filled before the vectors

    got: list[Ref] = []
    while deferred.pending_count():
        got.extend(deferred.encode_pending(7))
    assert sorted(got) == refs
    # The cached lists were brought up to date: a candidate that gets its vector takes
    # the place of a row's worst entry, wherever it stands (top lists once read only a
    # row's first k places, and missed it).
    assert _same(_top(deferred), _top(eager))
    assert _lists(deferred, refs) == _lists(eager, refs)
    assert not _same(_top(deferred), _top(lexical))  # the vectors changed something


def test_a_listing_changed_or_removed_before_its_turn_is_encoded_as_it_is_now() -> None:
    views = _views()
    encoder = HashingEncoder()
    m = Matcher(NOW, encoder=encoder, defer_encoding=True)
    m.upsert_many(views)
    owner, first = views[0]
    m.remove(owner, first["id"])
    assert (owner, first["id"]) not in m.pending_refs()
    owner2, second = views[1]
    changed = {**second, "version": second["version"] + 1, "fields": {**second["fields"]}}
    changed["fields"]["title"] = "Solar dryers for cassava chips"
    m.upsert(owner2, changed)
    kind2 = m._kind((owner2, second["id"]))
    assert kind2 is not None
    refs = [ref for ref in m.pending_refs() if m._kind(ref) == kind2]
    assert refs[-1] == (owner2, second["id"])  # queued again, at the end of its kind's
    while m.pending_count():
        m.encode_pending(50)
    kind = m._kind((owner2, second["id"]))
    assert kind is not None
    store = m.stores[kind]
    slot = store.slot_of[(owner2, second["id"])]
    assert store.dense is not None and bool(store.has_dense.view[slot])
    vector = store.dense.unit(np.array([slot]))[0]
    text = store.features[slot].text  # type: ignore[union-attr]
    assert "Solar dryers" in text
    expected = HashingEncoder().encode([text])[0]
    assert np.allclose(vector, expected, atol=1e-2)


def test_without_an_encoder_nothing_waits_to_be_encoded() -> None:
    m = Matcher(NOW, defer_encoding=True)
    m.upsert_many(_views())
    assert not m.pending_refs() and m.encode_pending(10) == []


class _FailingOnce(HashingEncoder):
    """Raises on its first call, as a model that ran out of memory would."""

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if self.calls == 0:
            self.calls += 1
            raise MemoryError("no room for the batch")
        return super().encode(texts)


def test_a_failed_encoding_leaves_its_listings_queued_for_the_next_pass() -> None:
    m = Matcher(NOW, encoder=_FailingOnce(), defer_encoding=True)
    m.upsert_many(_views())
    queued = list(m.pending_refs())
    with pytest.raises(MemoryError):
        m.encode_pending(5)
    assert sorted(m.pending_refs()) == sorted(queued)  # none lost
    got: list[Ref] = []
    while m.pending_count():
        got.extend(m.encode_pending(50))
    assert sorted(got) == sorted(queued)


class CountingEncoder(HashingEncoder):
    """HashingEncoder that counts the texts it encodes."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.texts.extend(texts)
        return super().encode(texts)


@pytest.mark.parametrize("defer", [False, True])
def test_a_new_version_with_the_same_text_keeps_its_vector(defer: bool) -> None:
    """A member's policy change re-sends every listing it shares, as new versions whose
    text has not changed: they keep their vectors, and only a changed text is encoded
    again (e5 takes ~0.1 s a listing: 50,000 listings re-sent were 80 minutes of CPU,
    which only a cache of recent texts had saved)."""
    views = _views()
    encoder = CountingEncoder()
    m = Matcher(NOW, encoder=encoder, defer_encoding=defer)
    m.upsert_many(views)
    m.encode_pending(len(views))
    encoded = len(encoder.texts)
    assert encoded == sum(1 for owner, v in views if m.features(owner, v["id"]) is not None)

    owner, view = next((o, v) for o, v in views if v["category"] == "tech_offer")
    same_text = {**view, "version": view["version"] + 1, "fields": {**view["fields"], "trl": 9}}
    reworded = {**view, "version": view["version"] + 2}
    reworded["fields"] = {**view["fields"], "summary": "A different summary altogether."}
    m.upsert_many([(owner, same_text)])
    assert len(encoder.texts) == encoded and not m.pending_count()  # none encoded or waiting
    fresh = Matcher(NOW, encoder=HashingEncoder())
    others = [(o, v) for o, v in views if (o, v["id"]) != (owner, view["id"])]
    fresh.upsert_many([*others, (owner, same_text)])
    assert _same(_top(m), _top(fresh))  # as if the new version had been encoded

    m.upsert_many([(owner, reworded)])
    m.encode_pending(10)
    feats = m.features(owner, view["id"])
    assert feats is not None and encoder.texts[encoded:] == [feats.text]


def test_with_a_text_source_the_texts_are_read_back_and_survive_a_compaction() -> None:
    """A matcher given a ``text_source`` keeps each text's key, not the text: it encodes,
    and explains, with the source's text, after a compaction as before it."""
    views = _views()
    source = {(owner, view["id"]): view for owner, view in views}
    asked: list[Ref] = []

    def read(refs: Sequence[Ref]) -> dict[Ref, dict[str, Any]]:
        asked.extend(refs)
        return {ref: source[ref] for ref in refs if ref in source}

    eager = Matcher(NOW, encoder=HashingEncoder())
    m = Matcher(NOW, encoder=HashingEncoder(), defer_encoding=True, text_source=read)
    eager.upsert_many(views)
    m.upsert_many(views)
    assert all(m.stores[k].texts[int(s)] == "" for k in m.stores for s in m.stores[k].live_slots())
    waiting = sorted(m.pending_refs())
    m.encode_pending(len(waiting) // 2)
    m.compact()  # rebuilt stores: the keys and what waits for its vector are carried over
    assert sorted(m.pending_refs()) == sorted(set(waiting) - set(asked))
    while m.pending_count():
        m.encode_pending(7)
    assert sorted(asked) == waiting  # each text read back once
    refs = sorted(waiting)[:20]
    assert _lists(m, refs) == _lists(eager, refs)
    evidence = {ref: [x.semantic_evidence for x in eager.matches_for(*ref)] for ref in refs}
    assert evidence == {ref: [x.semantic_evidence for x in m.matches_for(*ref)] for ref in refs}
    assert any(e is not None for found in evidence.values() for e in found)

    # A source that lost a listing, or has another text for it: not encoded, not
    # explained with a text that is not the matcher's.
    owner, view = next((o, v) for o, v in views if v["category"] == "tech_request")
    ref = (owner, view["id"])
    m.upsert(
        owner,
        {
            **view,
            "version": view["version"] + 1,
            "fields": {**view["fields"], "summary": "Another text."},
        },
    )
    assert m.pending_refs() == [ref]
    assert m.encode_pending(5) == [] and not m.pending_count()
    assert all(x.semantic_evidence is None for x in m.matches_for(*ref))
