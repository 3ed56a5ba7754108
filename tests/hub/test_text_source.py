"""The hub's worker does not keep every listing's text (~740 bytes a listing): it reads a
text back from the database when it encodes the listing and when it explains a match, and
uses it only if it is still the text the matcher took in."""

from __future__ import annotations

from node.hub.match_engine import MatchEngine
from node.matching.features import Ref
from node.matching.vectors import text_key
from tests.federation.network import NodeFactory
from tests.hub.test_match_changes import matched_listing, quiet_hub, touch
from tests.matching.test_deferred_encoding import CountingEncoder as Recording


def _slot(engine: MatchEngine, ref: Ref) -> tuple[str, int]:
    kind = engine.matcher._kind(ref)
    assert kind is not None
    return kind, engine.matcher.stores[kind].slot_of[ref]


async def test_texts_are_read_back_from_the_database_not_kept(node_factory: NodeFactory) -> None:
    hub, members = await quiet_hub(node_factory)
    rt = hub.runtime
    encoder = Recording()
    engine = MatchEngine(rt, encoder, consumes_queue=True)
    await rt.run(engine.refresh)
    held = len(engine.versions)
    assert held > 0 and engine.matcher.pending_count() == held
    stores = engine.matcher.stores.values()
    # No text in the stores: only its 16-byte key.
    assert all(store.texts[int(s)] == "" for store in stores for s in store.live_slots())
    while engine.matcher.pending_count():
        await rt.run(engine.encode)
    assert len(encoder.texts) == held  # each listing's text, read back once
    for store in stores:
        for slot in store.live_slots().tolist():
            assert store.has_dense.view[slot]
    # Each was encoded from its own text, the one its key names.
    keys = {text_key(kind, t) for t in encoder.texts for kind in ("request", "offer")}
    assert all(store.key(int(s)) in keys for store in stores for s in store.live_slots())

    # A match is explained with a sentence of the listing's text, read back too.
    request = next(r for r in engine.versions if engine.matcher._kind(r) == "request")
    found = await rt.run(engine.matches_for, request)
    semantic = [m for m in found if "semantic" in m.components]
    assert semantic and all(m.semantic_evidence is not None for m in semantic)
    view = engine._views([request])[request]
    sentence = semantic[0].semantic_evidence.sentence  # type: ignore[union-attr]
    assert sentence in str(view["fields"])


async def test_a_text_changed_before_its_turn_is_encoded_as_its_new_version(
    node_factory: NodeFactory,
) -> None:
    hub, members = await quiet_hub(node_factory)
    rt = hub.runtime
    encoder = Recording()
    engine = MatchEngine(rt, encoder, consumes_queue=True)
    await rt.run(engine.refresh)
    ref = ("th", matched_listing(members["th"]))
    kind, slot = _slot(engine, ref)
    old_key = engine.matcher.stores[kind].key(slot)

    # The member renames it and the hub pulls the new version before the worker's turn
    # came: the database has a text the matcher has not taken in yet.
    touch(members["th"], ref[1])
    await hub.sync.sync_peer("th", force=True)
    while engine.matcher.pending_count():
        await rt.run(engine.encode)
    store = engine.matcher.stores[kind]
    assert not store.has_dense.view[slot]  # not given the new text's vector under the old key
    assert store.key(slot) == old_key
    assert not any("Renamed offer" in text for text in encoder.texts)

    # The next pass takes the new version in; it is encoded with its own text.
    await rt.run(engine.refresh)
    kind, slot = _slot(engine, ref)
    assert engine.matcher.pending_refs() == [ref]
    await rt.run(engine.encode)
    renamed = [text for text in encoder.texts if "Renamed offer" in text]
    assert len(renamed) == 1 and engine.matcher.stores[kind].has_dense.view[slot]
    assert engine.matcher.stores[kind].key(slot) == text_key(kind, renamed[0])
