"""A listing is encoded once: the hub's worker keeps its vectors apart from the matcher's
snapshot (``vector_file``), so a worker that had to load from the database (an upgrade
discarded the snapshot) encodes only the texts it has no vector for."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pytest

from node.hub import match_snapshot, vector_file
from node.hub.match_engine import MatchEngine
from node.matching.vectors import HeldVectors
from node.runtime import NodeRuntime
from tests.federation.network import NodeFactory
from tests.hub.test_match_changes import matched_listing, quiet_hub, touch
from tests.matching.test_cli_semantic import HashingEncoder


class Counting(HashingEncoder):
    """Deterministic bag-of-words vectors, counting the texts it encodes."""

    def __init__(self, name: str = "counting") -> None:
        super().__init__()
        self.name = name
        self.texts = 0

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.texts += len(texts)
        return super().encode(texts)


async def encoded_engine(rt: NodeRuntime, encoder: Counting) -> MatchEngine:
    """A worker's engine that loaded what the hub holds and encoded all of it."""
    engine = MatchEngine(rt, encoder, consumes_queue=True)
    await rt.run(engine.after_sync)
    while engine.matcher.pending_count():
        await rt.run(engine.encode)
    return engine


async def test_a_worker_that_loads_from_the_database_reuses_the_vectors_kept(
    node_factory: NodeFactory,
) -> None:
    hub, members = await quiet_hub(node_factory)
    rt = hub.runtime
    first_encoder = Counting()
    first = await encoded_engine(rt, first_encoder)
    held = len(first.versions)
    assert first_encoder.texts >= held > 0
    first.save(force=True)  # written with the snapshot (unless nothing changed since)
    kept = vector_file.load(rt.data_dir, "counting")
    assert kept is not None
    before = by_key(first.matcher.held_vectors())
    assert by_key(kept) == before and len(before) == held

    # An upgrade: the snapshot is of another matching code, so it is not used.
    match_snapshot.remove(rt.data_dir)
    touch(members["th"], changed := matched_listing(members["th"]))
    await hub.sync.sync_peer("th", force=True)
    encoder = Counting()
    again = MatchEngine(rt, encoder, consumes_queue=True)
    await rt.run(again.refresh)
    assert again.reads == held  # every summary parsed again, from the database
    # Every listing but the changed one has its vector back, without encoding it.
    assert list(again.matcher.pending_refs()) == [("th", changed)] and encoder.texts == 0
    await rt.run(again.encode)
    assert encoder.texts == 1
    after = by_key(again.matcher.held_vectors())
    assert len(after) == held and len(after.keys() & before.keys()) == held - 1
    assert all(after[key] == before[key] for key in after.keys() & before.keys())


def by_key(held: list[HeldVectors]) -> dict[bytes, tuple[bytes, float]]:
    """Each kept vector (codes and scale) by its text's key."""
    out = {}
    for keys, codes, scales in held:
        for key, row, scale in zip(keys, codes, scales, strict=True):
            if bytes(key) != bytes(16):
                out[bytes(key)] = (row.tobytes(), float(scale))
    return out


async def test_vectors_of_another_model_or_a_damaged_file_are_not_reused(
    node_factory: NodeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    hub, _ = await quiet_hub(node_factory)
    rt = hub.runtime
    first = await encoded_engine(rt, Counting())
    first.save(force=True)
    held = len(first.versions)
    path = vector_file.path_in(rt.data_dir)
    assert vector_file.load(rt.data_dir, "counting") is not None
    assert vector_file.load(rt.data_dir, "another") is None

    async def texts_encoded(name: str) -> int:
        match_snapshot.remove(rt.data_dir)
        encoder = Counting(name)
        engine = MatchEngine(rt, encoder, consumes_queue=True)
        await rt.run(engine.refresh)
        return engine.matcher.pending_count()

    assert await texts_encoded("another") == held  # another model: all encoded again
    assert await texts_encoded("counting") == 0
    intact = path.read_bytes()
    path.write_bytes(intact[: len(intact) // 2])  # cut short
    assert await texts_encoded("counting") == held
    assert "kept vectors unreadable" in caplog.text
    # Arrays that do not fit together: refused as a whole.
    (keys, codes, scales), *rest = first.matcher.held_vectors()
    assert vector_file.save(rt.data_dir, "counting", [(keys, codes[:-1], scales), *rest])
    assert vector_file.load(rt.data_dir, "counting") is None
    assert "kept vectors malformed" in caplog.text


def test_a_new_calibration_re_matches_but_keeps_the_vectors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """How a model's cosines count is scoring, not encoding: changing it makes every
    listing's stamp differ (re-matched once) and leaves the vectors' identity alone
    (encoded 200,000 listings take hours to encode again)."""
    from node.hub.match_engine import scoring_identity
    from node.matching import calibration
    from node.matching.semantic import CachedEncoder

    scoring_before = scoring_identity("e5")
    monkeypatch.setitem(calibration.SCALES, "e5", (0.70, 0.12))
    assert CachedEncoder(Counting("e5")).scale == (0.70, 0.12)
    assert scoring_identity("e5") != scoring_before
    # The numbers live outside the code the vectors' identity digests.
    assert "calibration.py" not in vector_file.ENCODING_SOURCES
