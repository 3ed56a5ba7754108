"""The hub matches semantically by default: its worker loads the installed multilingual
model, matches each listing lexically at once and encodes it in the background, and
``/hub/status`` says which model it uses, how many listings are still to encode, and why
it matches lexically when the model is switched off or cannot load."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest

from node.hub import notices
from node.hub.match_engine import scoring_identity
from node.hub.notices import MatchingService
from node.matching.model_choice import DEFAULT_MODEL
from node.web.appkeys import HUB_MATCHING
from tests.federation.network import NodeFactory, load_records, start_network
from tests.hub.helpers import get_json
from tests.hub.test_match_worker import poll_until
from tests.node.sample import sample_record
from tests.nodes import RunningNode

# Lao requests and Chinese offers; the sample data pairs la-req-0006 with cn-off-0026.
REQUESTS = ("la-req-0002", "la-req-0003", "la-req-0006")
OFFERS = ("cn-off-0010", "cn-off-0026", "cn-off-0051")
DEADLINE_S = 120.0


async def _matching_when(
    http: aiohttp.ClientSession, hub: RunningNode, done: Any
) -> dict[str, Any]:
    """``/hub/status``'s matching part once ``done(part)`` holds (polled, with a deadline)."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        status, body = await get_json(http, hub.url + "/hub/status", token=hub.token)
        assert status == 200, body
        part: dict[str, Any] = body["matching"]
        if done(part):
            return part
        assert time.monotonic() < deadline, f"matching did not settle: {part}"
        await asyncio.sleep(0.2)


async def _small_network(node_factory: NodeFactory) -> tuple[RunningNode, RunningNode]:
    net = await start_network(node_factory, ["la"], load_sample=False)
    load_records(net.hub, [sample_record(i) for i in OFFERS])
    load_records(net.nodes["la"], [sample_record(i) for i in REQUESTS])
    runs = await net.hub.sync.sync_all()
    assert all(r.error is None for r in runs), [r.error for r in runs]
    return net.hub, net.nodes["la"]


def _settled(part: dict[str, Any]) -> bool:
    held = len(REQUESTS) + len(OFFERS)
    sem = part.get("semantic")
    if not isinstance(sem, dict):
        return False  # before the first pass
    return bool(part["held"] == held and part["pending"] == 0 and sem["to_encode"] == 0)


async def test_the_hub_encodes_in_the_background_and_matches_with_the_model(
    node_factory: NodeFactory, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CATTC_SEMANTIC", raising=False)  # the hub's default
    hub, _ = await _small_network(node_factory)
    part = await _matching_when(http, hub, _settled)
    assert part["model"] == DEFAULT_MODEL and part["this_process"] is True
    assert part["semantic"] == {
        "enabled": True,
        "model": DEFAULT_MODEL,
        "reason": None,
        "to_encode": 0,
    }
    assert part["scoring"] == scoring_identity(DEFAULT_MODEL)
    assert f"/{DEFAULT_MODEL}/" in part["scoring"]
    service = hub.app[HUB_MATCHING].service
    found = await asyncio.to_thread(service.matches_for, ("la", "la-req-0006"))
    assert found and found[0].candidate == ("cn", "cn-off-0026")
    best = found[0]
    assert "semantic" in best.components  # both have their vector now
    assert best.semantic_evidence is not None and best.semantic_evidence.model == DEFAULT_MODEL
    # The top lists (the operator's /admin/v1/matches) were brought up to date too.
    tops = await asyncio.to_thread(service.top, 10)
    assert tops and all("semantic" in m.components for found in tops.values() for m in found)


async def test_switched_off_the_hub_matches_lexically_and_says_so(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    # The suite runs with CATTC_SEMANTIC=off (tests/conftest.py).
    hub, _ = await _small_network(node_factory)
    part = await _matching_when(http, hub, _settled)
    assert part["model"] == "lexical"
    assert part["semantic"]["enabled"] is False
    assert part["semantic"]["reason"] == "switched off by CATTC_SEMANTIC"
    service = hub.app[HUB_MATCHING].service
    found = await asyncio.to_thread(service.matches_for, ("la", "la-req-0006"))
    assert found[0].candidate == ("cn", "cn-off-0026")
    assert "semantic" not in found[0].components


async def test_a_model_that_cannot_load_leaves_the_hub_lexical_with_the_reason(
    node_factory: NodeFactory, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CATTC_SEMANTIC", "no-such-model")
    hub, _ = await _small_network(node_factory)
    part = await _matching_when(http, hub, _settled)
    assert part["model"] == "no-such-model"
    assert part["semantic"]["enabled"] is False
    assert "unknown model 'no-such-model'" in part["semantic"]["reason"]
    assert part["scoring"].endswith("/lexical")
    service = hub.app[HUB_MATCHING].service
    found = await asyncio.to_thread(service.matches_for, ("la", "la-req-0006"))
    assert found[0].candidate == ("cn", "cn-off-0026")


async def test_encoding_waits_while_a_long_pull_is_checked_in_the_workers(
    node_factory: NodeFactory,
) -> None:
    """While the verify workers run (a first sync), the passes match and notify lexically
    and leave encoding for later; it starts once the workers stop."""
    hub, _ = await _small_network(node_factory)  # its own matcher lexical (the suite's)
    pool = hub.sync.pool
    pool.workers = max(pool.workers, 1)  # (a one-core machine runs none by default)
    await pool.warm()
    assert hub.sync.checking_in_workers()
    service = MatchingService(
        hub.runtime, DEFAULT_MODEL, in_worker=True, hold_encoding=hub.sync.checking_in_workers
    )
    try:
        await service.rematch()
        assert service.left == 0  # every listing matched, lexically
        assert service.encoding_held
        assert service.last_status is not None
        assert service.last_status["semantic"]["to_encode"] == len(REQUESTS) + len(OFFERS)
        found = await asyncio.to_thread(service.matches_for, ("la", "la-req-0006"))
        assert found[0].candidate == ("cn", "cn-off-0026")
        assert "semantic" not in found[0].components

        pool.release()  # the pulls caught up
        assert not hub.sync.checking_in_workers()
        await poll_until(lambda: not service.encoding_held and _encoded(service), 120, "encoding")
        found = await asyncio.to_thread(service.matches_for, ("la", "la-req-0006"))
        assert found[0].candidate == ("cn", "cn-off-0026")
        assert "semantic" in found[0].components
    finally:
        await service.aclose()


def _encoded(service: MatchingService) -> bool:
    status = service.last_status
    return status is not None and status["semantic"]["to_encode"] == 0 and service.left == 0


async def test_a_hold_that_never_ends_lifts_after_its_longest(
    node_factory: NodeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verify workers that never stop (a member whose long pulls keep failing midway)
    hold encoding back for ``MAX_HOLD_S`` at most."""
    monkeypatch.setattr(notices, "MAX_HOLD_S", 1.0)
    monkeypatch.setattr(notices, "PAUSE_POLL_S", 0.05)
    hub, _ = await _small_network(node_factory)
    service = MatchingService(
        hub.runtime, DEFAULT_MODEL, in_worker=True, hold_encoding=lambda: True
    )
    try:
        started = time.monotonic()
        await service.rematch()
        assert service.encoding_held  # held at first
        await poll_until(lambda: not service.encoding_held and _encoded(service), 120, "encoding")
        assert time.monotonic() - started >= 1.0
    finally:
        await service.aclose()
