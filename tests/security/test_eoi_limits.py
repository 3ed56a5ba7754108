"""Rate limits on expressions of interest (issue: trust the hub, findings "EoI existence
oracle" and "one EoI flood blocks a member for good").

A member may send ``PER_SENDER_PER_HOUR`` EoIs in any hour and ``PER_LISTING_PER_DAY`` in
any one listing a day; more are refused with 429 ``rate_limited`` and a Retry-After,
whatever the listings are (held, visible or not: the limit is no oracle either). So one
member's flood puts at most that many EoIs, each at most ``BODY_MAX_BYTES``, in an
owner's feed. The hub runs on a clock the test moves.
"""

from __future__ import annotations

import asyncio
from typing import Any

from node.hub.eoi_gate import DAY_MS, HOUR_MS, PER_LISTING_PER_DAY, PER_SENDER_PER_HOUR
from node.web.federation_auth import ORIGIN_IN_FLIGHT
from protocol.canonical import canonical_bytes
from protocol.eoi import BODY_MAX_BYTES, MESSAGE_MAX_CHARS
from tests.federation.clocks import HeldClock
from tests.federation.network import NodeFactory
from tests.security.eoi_net import EOI, eoi_network, eoi_obj, forwards_for, hub_states, post

BIG = "\U0001f4a1" * MESSAGE_MAX_CHARS  # the longest message, 4 bytes a character


async def test_per_listing_and_per_sender_limits(node_factory: NodeFactory) -> None:
    clock = HeldClock()
    net = await eoi_network(node_factory, hub_clock=clock)

    async def send(
        sender: str, listing_id: str, message: str = "Interested."
    ) -> tuple[int, dict[str, Any]]:
        node = net.nodes[sender]
        status, answer, headers = await post(
            net, node, EOI, eoi_obj(node, "th", listing_id, message), clock
        )
        if status == 429:
            answer["retry_after"] = headers["Retry-After"]
        return status, answer

    # One listing: PER_LISTING_PER_DAY a day, the same for a listing vn may know ...
    for listing_id in ("th-off-0001", "th-off-0999"):  # ... and one that does not exist
        for _ in range(PER_LISTING_PER_DAY):
            assert (await send("vn", listing_id))[0] == 202
        status, answer = await send("vn", listing_id)
        assert status == 429 and answer["error"]["code"] == "rate_limited", answer
        assert "a day in one listing" in answer["error"]["message"]
        assert answer["retry_after"] == str(DAY_MS // 1000)
    assert (await send("my", "th-off-0001"))[0] == 202  # another sender is not held back

    clock.now += DAY_MS + 1
    assert (await send("vn", "th-off-0001"))[0] == 202

    # Any listings: PER_SENDER_PER_HOUR an hour, the longest messages fitting the body.
    clock.now += HOUR_MS + 1
    for i in range(PER_SENDER_PER_HOUR):
        status, answer = await send(
            "vn", ("th-off-0001", "th-off-0002")[i % 2] if i < 4 else f"th-x-{i}", BIG
        )
        assert status == 202, answer
    clock.now += HOUR_MS // 2
    status, answer = await send("vn", "th-off-0003")
    assert status == 429 and answer["error"]["code"] == "rate_limited", answer
    assert (
        f"at most {PER_SENDER_PER_HOUR} expressions of interest an hour"
        in answer["error"]["message"]
    )
    assert answer["retry_after"] == str(HOUR_MS // 2 // 1000)
    clock.now += HOUR_MS // 2 + 1
    assert (await send("vn", "th-off-0003"))[0] == 202

    # Refused EoIs were neither kept nor queued; what was queued for th is bounded.
    sent = 2 * PER_LISTING_PER_DAY + 1 + 1 + PER_SENDER_PER_HOUR + 1
    assert len(hub_states(net)) == sent
    queued = [len(canonical_bytes(f)) for f in forwards_for(net, "th")]
    assert len(queued) == PER_LISTING_PER_DAY + 1 + 4 + 1  # those vn (or my) may know
    assert max(queued) < BODY_MAX_BYTES + 1024


async def test_the_limits_hold_for_interests_sent_at_once(node_factory: NodeFactory) -> None:
    """Counted, then added: on PostgreSQL, interests sent at once all counted before any
    was added. The count and the insert now hold one lock, on every database."""
    net = await eoi_network(node_factory)
    vn = net.nodes["vn"]
    at_once = ORIGIN_IN_FLIGHT  # as many as one member may have answered at once
    bodies = [eoi_obj(vn, "th", "th-off-0001", f"Interested ({i}).") for i in range(at_once)]
    answers = await asyncio.gather(*(post(net, vn, EOI, body) for body in bodies))
    statuses = sorted(status for status, _, _ in answers)
    assert statuses == [202] * PER_LISTING_PER_DAY + [429] * (at_once - PER_LISTING_PER_DAY)
