"""Expressions of interest and replies are typed and bounded at the hub's door (issue:
trust the hub, finding "EoI existence oracle": no schema or length check, a 3 MB message
accepted, a missing ``listing`` a 500).

Every malformed body gets a 4xx with a code that says what is wrong, never a 500, and
leaves nothing behind: no EoI kept, nothing queued for anyone.
"""

from __future__ import annotations

import json
from typing import Any

from protocol.eoi import BODY_MAX_BYTES, MESSAGE_MAX_CHARS
from tests.federation.network import NodeFactory
from tests.security.eoi_net import (
    EOI,
    REPLY,
    eoi_network,
    eoi_obj,
    forwards_for,
    hub_states,
    post,
    reply_obj,
)

LISTING = "th-off-0001"  # relayed by th's rule to vn's group: a good EoI would pass


async def test_malformed_interest_is_refused_with_a_code(node_factory: NodeFactory) -> None:
    net = await eoi_network(node_factory)
    vn = net.nodes["vn"]
    cases: list[tuple[str, bytes | dict[str, Any], int, str, str]] = [
        ("no listing", eoi_obj(vn, "th", LISTING, listing=None), 422, "schema_invalid", "listing"),
        (
            "listing not an object",
            eoi_obj(vn, "th", LISTING, listing="th-off-0001"),
            422,
            "schema_invalid",
            "listing",
        ),
        ("no message", eoi_obj(vn, "th", LISTING, message=None), 422, "schema_invalid", "message"),
        ("blank message", eoi_obj(vn, "th", LISTING, "  \n "), 422, "schema_invalid", "blank"),
        (
            "message too long",
            eoi_obj(vn, "th", LISTING, "x" * (MESSAGE_MAX_CHARS + 1)),
            422,
            "schema_invalid",
            f"at most {MESSAGE_MAX_CHARS} characters",
        ),
        (
            "3 MB message",
            eoi_obj(vn, "th", LISTING, "x" * 3_000_000),
            413,
            "body_too_large",
            f"at most {BODY_MAX_BYTES} bytes",
        ),
        (
            "an unknown field",
            eoi_obj(vn, "th", LISTING, contact={"email": "a@b.c"}),
            422,
            "schema_invalid",
            "contact",
        ),
        ("ts a string", eoi_obj(vn, "th", LISTING, ts="yesterday"), 422, "schema_invalid", "ts"),
        (
            "someone else's id",
            eoi_obj(vn, "th", LISTING, id="th-eoi-000000000001"),
            422,
            "schema_invalid",
            "vn-eoi-",
        ),
        ("not for this hub", eoi_obj(vn, "th", LISTING, audience="th"), 400, "bad_request", "th"),
        ("not an object", b"[1, 2, 3]", 422, "schema_invalid", "expression of interest"),
        ("not JSON", b"{'listing': 1}", 400, "invalid_json", "not valid JSON"),
        ("empty", b"", 400, "invalid_json", "empty"),
        ("nested 10,000 deep", b"[" * 10_000 + b"]" * 10_000, 400, "invalid_json", "deep"),
        ("a 5,000-digit ts", _with_ts(eoi_obj(vn, "th", LISTING)), 400, "invalid_json", "number"),
        # forwarded, it reached the owner's console page as a raw NUL byte
        ("NUL in the message", eoi_obj(vn, "th", LISTING, "a\x00b"), 400, "invalid_json", "NUL"),
    ]
    for name, body, status, code, words in cases:
        got, answer, _ = await post(net, vn, EOI, body)
        assert got == status, (name, answer)
        assert answer["error"]["code"] == code, (name, answer)
        assert words in answer["error"]["message"], (name, answer)
    assert hub_states(net) == {}
    assert forwards_for(net, "th") == []


def _with_ts(obj: dict[str, Any]) -> bytes:
    text = json.dumps({k: v for k, v in obj.items() if k != "ts"})
    return ('{"ts": ' + "9" * 5000 + ", " + text[1:]).encode()


async def test_malformed_reply_is_refused_and_changes_nothing(node_factory: NodeFactory) -> None:
    net = await eoi_network(node_factory)
    vn, th = net.nodes["vn"], net.nodes["th"]
    eoi = eoi_obj(vn, "th", LISTING)
    assert (await post(net, vn, EOI, eoi))[0] == 202
    cases: list[tuple[dict[str, Any], str]] = [
        ({"decision": "maybe"}, "decision"),
        ({"decision": "introduced"}, "decision"),
        ({"decision": None}, "decision"),
        ({"eoi_id": None}, "eoi_id"),
        ({"decision": "declined", "contact": {"email": "a@th.example"}}, "no contact"),
        ({"contact": {"fax": "+66 1"}}, "contact.fax"),
        ({"contact": {"email": "x" * 5000}}, "contact.email"),
    ]
    for change, words in cases:
        status, answer, _ = await post(
            net, th, REPLY, reply_obj(th, **{"eoi_id": eoi["id"], "decision": "accepted", **change})
        )
        assert (status, answer["error"]["code"]) == (422, "schema_invalid"), (change, answer)
        assert words in answer["error"]["message"], (change, answer)
    assert hub_states(net)[eoi["id"]][2] == "forwarded"
    assert forwards_for(net, "vn", "eoi_reply_forward") == []
