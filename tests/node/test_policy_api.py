"""The policy admin API of a real node on a loopback port (DESIGN 7, docs/api.md).

PUT /admin/v1/policy refuses a broken policy with 422 ``invalid_policy`` naming the rule
and the key, changing nothing; a good one becomes a new version that the feeds carry at
once (retractions for what was narrowed away). GET /admin/v1/views/{id} is exactly what
the reader's feed carries. /check and /diff answer without changing anything.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import yaml
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session

from node.cli.main import cli
from node.config import POLICY_FILE
from node.storage.models import ChangeRow
from policies.write import default_policy_yaml
from protocol.signing import verify_object
from tests.node.sample import sample_records
from tests.node.test_policy_cli import BROKEN
from tests.nodes import RunningNode

NodeFactory = Callable[..., Awaitable[RunningNode]]

NARROW = yaml.safe_dump(
    {
        "groups": {"mou": ["cn", "th", "la", "kh", "mm", "vn", "bn", "id"], "no_mou": ["my", "ph"]},
        "rules": [
            {
                "audience": "mou",
                "category": "tech_offer",
                "visibility": ["public"],
                "fields": ["title", "summary", "trl"],
            },
            {
                "audience": "no_mou",
                "category": "tech_request",
                "visibility": ["public"],
                "fields": ["title"],
            },
        ],
    },
    sort_keys=False,
)


async def cn_node(node_factory: NodeFactory, http: aiohttp.ClientSession) -> RunningNode:
    node = await node_factory("cn")
    lines = "\n".join(json.dumps(r) for r in sample_records("cn"))
    status, report = await node.admin(http, "POST", "/admin/v1/listings/import", data=lines)
    assert status == 200 and report["created"] == len(sample_records("cn")), report
    return node


async def state(node: RunningNode, http: aiohttp.ClientSession) -> dict[str, Any]:
    status, active = await node.admin(http, "GET", "/admin/v1/policy")
    assert status == 200
    status, versions = await node.admin(http, "GET", "/admin/v1/policy/versions")
    assert status == 200
    return {
        "active": active,
        "versions": versions["versions"],
        "file": (node.data_dir / POLICY_FILE).read_text(encoding="utf-8"),
        "head": node.runtime.listings.head(),
    }


def policy_changes_after(node: RunningNode, seq: int) -> list[tuple[str, int]]:
    with Session(node.runtime.engine) as session:
        rows = session.scalars(select(ChangeRow).where(ChangeRow.seq > seq))
        return sorted((r.listing_id, r.version) for r in rows if r.kind == "policy")


async def test_put_broken_policy_is_422_naming_rule_and_key_and_changes_nothing(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    node = await cn_node(node_factory, http)
    before = await state(node, http)
    assert before["active"]["version"] == 1 and len(before["versions"]) == 1
    for name, (make, expected) in BROKEN.items():
        for method, path in (("PUT", "/admin/v1/policy"), ("POST", "/admin/v1/policy/check")):
            status, body = await node.admin(http, method, path, data=make().encode())
            assert status == 422, (name, path, body)
            assert body["error"]["code"] == "invalid_policy"
            issues = body["error"]["issues"]
            assert any(all(p in issue for p in expected) for issue in issues), (name, issues)
            assert all(p in body["error"]["message"] for p in expected), name
        status, body = await node.admin(http, "POST", "/admin/v1/policy/diff", data=make())
        assert status == 422 and body["error"]["code"] == "invalid_policy", name
        assert await state(node, http) == before, name

    for empty in (b"", b"  \n"):
        status, body = await node.admin(http, "PUT", "/admin/v1/policy", data=empty)
        assert status == 400 and body["error"]["code"] == "bad_request"
    status, body = await node.admin(http, "PUT", "/admin/v1/policy?author=", data=NARROW)
    assert status == 400 and body["error"]["code"] == "bad_request"
    async with http.put(node.url + "/admin/v1/policy", data=NARROW) as resp:
        assert resp.status == 401
    assert await state(node, http) == before


async def test_put_valid_policy_is_a_new_version_the_feed_carries_at_once(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    node = await cn_node(node_factory, http)
    status, _ = await node.admin(http, "POST", "/admin/v1/listings/cn-off-0002/withdraw")
    assert status == 200
    live = {
        s.id: s.record["version"] for s in node.runtime.listings.iter_all(include_withdrawn=False)
    }
    first = node.runtime.feed.page("th", None, 1000)
    assert not first["more"]
    held = {i["listing"]["id"] for i in first["items"] if i["type"] == "listing"}
    status, dry = await node.admin(http, "POST", "/admin/v1/policy/diff", data=NARROW)
    assert status == 200
    gone = set(dry["audiences"]["th"]["becoming_invisible"])
    assert gone and gone <= held
    before = await state(node, http)

    status, applied = await node.admin(http, "PUT", "/admin/v1/policy?author=ops", data=NARROW)
    assert status == 200, applied
    digest = hashlib.sha256(NARROW.encode("utf-8")).hexdigest()
    assert (applied["version"], applied["digest"], applied["author"]) == (2, digest, "ops")
    after = await state(node, http)
    assert after["active"]["text"] == NARROW and after["active"]["version"] == 2
    assert [(v["version"], v["author"], v["active"]) for v in after["versions"]] == [
        (1, "cattc init (default)", False),
        (2, "ops", True),
    ]
    assert policy_changes_after(node, before["head"]) == sorted(live.items())
    assert after["head"] == before["head"] + len(live)

    # the next page for th: retractions for exactly what the dry run said disappears,
    # the new views (policy version 2) for the rest of what it held
    second = node.runtime.feed.page("th", first["next"], 1000)
    retracted = {i["listing_id"]: i["reason"] for i in second["items"] if i["type"] == "retraction"}
    assert retracted == dict.fromkeys(gone, "not_shared")
    views = [i for i in second["items"] if i["type"] == "listing"]
    assert {v["listing"]["id"] for v in views} == held - gone
    assert {v["policy"]["version"] for v in views} == {2}

    # the same text again: no version, nothing logged
    status, same = await node.admin(http, "PUT", "/admin/v1/policy?author=other", data=NARROW)
    assert status == 200 and (same["version"], same["author"]) == (2, "ops")
    assert await state(node, http) == after


async def test_view_is_exactly_what_the_readers_feed_carries(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    node = await cn_node(node_factory, http)
    keys = node.runtime.keys.verify_keys()
    ids = [s.id for s in node.runtime.listings.iter_all(include_withdrawn=False)]
    drop = ("ts", "signatures")
    counts: dict[str, int] = {}
    for reader in ("th", "my"):
        page = node.runtime.feed.page(reader, None, 1000)
        assert not page["more"]
        fed = {i["listing"]["id"]: i for i in page["items"] if i["type"] == "listing"}
        assert fed and len(fed) == len(page["items"])
        served: set[str] = set()
        for listing_id in ids:
            status, body = await node.admin(
                http, "GET", f"/admin/v1/views/{listing_id}?audience={reader}"
            )
            if status == 404:
                assert body["error"]["code"] == "not_found"
                assert body["error"]["message"].startswith(
                    f"{reader} receives nothing of {listing_id}: "
                )
                continue
            assert status == 200, body
            served.add(listing_id)
            assert verify_object(body, "cn", keys) == "ed25519:1"
            assert body["listing"] == fed[listing_id]["listing"]
            assert {k: v for k, v in body.items() if k not in drop} == {
                k: v for k, v in fed[listing_id].items() if k not in drop
            }
        assert served == set(fed), reader
        counts[reader] = len(served)
    # the no_mou reader gets less than the mou reader: both kinds of rule were compared
    assert counts["th"] > counts["my"] > 0, counts
    status, explained = await node.admin(
        http, "GET", f"/admin/v1/policy/explain/{sorted(fed)[0]}?audience=my"
    )
    assert status == 200 and explained["shared"] is True
    assert explained["view"]["listing"] == fed[sorted(fed)[0]]["listing"]


async def test_view_refusals(node_factory: NodeFactory, http: aiohttp.ClientSession) -> None:
    node = await cn_node(node_factory, http)
    private = next(r["id"] for r in sample_records("cn") if r["visibility"] == "private")
    status, body = await node.admin(http, "GET", f"/admin/v1/views/{private}?audience=th")
    assert status == 404 and body["error"]["code"] == "not_found"
    assert body["error"]["message"] == (
        f"th receives nothing of {private}: the listing is private; it never leaves the node"
    )
    org = next(r["id"] for r in sample_records("cn") if r["category"] == "organization")
    status, body = await node.admin(http, "GET", f"/admin/v1/views/{org}?audience=th")
    assert status == 404 and "no rule names this audience" in body["error"]["message"]
    status, body = await node.admin(http, "GET", "/admin/v1/views/cn-off-9999?audience=th")
    assert status == 404 and "no listing cn-off-9999" in body["error"]["message"]

    for query in ("", "?audience=", "?audience=TH", "?audience=t", "?audience=th&x=1"):
        for path in ("/admin/v1/views/cn-off-0001", "/admin/v1/policy/explain/cn-off-0001"):
            status, body = await node.admin(http, "GET", path + query)
            assert status == 400 and body["error"]["code"] == "bad_request", (path, query)
    for headers in ({}, {"Authorization": "Bearer token-th"}):
        async with http.get(
            node.url + "/admin/v1/views/cn-off-0001?audience=th", headers=headers
        ) as resp:
            assert resp.status == 401
            assert (await resp.json())["error"]["code"] == "unauthorized"


async def test_check_and_diff_answer_and_refuse_bad_input(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    node = await cn_node(node_factory, http)
    before = await state(node, http)

    status, body = await node.admin(http, "POST", "/admin/v1/policy/check", data=NARROW)
    assert status == 200 and body == {"valid": True, "issues": []}
    status, body = await node.admin(
        http, "POST", "/admin/v1/policy/check", data=default_policy_yaml("cn")
    )
    assert status == 200 and body == {"valid": True, "issues": []}

    status, body = await node.admin(http, "POST", "/admin/v1/policy/diff", data=NARROW)
    assert status == 200
    path = node.data_dir.parent / "narrow.yaml"
    path.write_text(NARROW, encoding="utf-8")
    cli_out = CliRunner().invoke(cli, ["policy", str(node.data_dir), "diff", str(path), "--json"])
    assert cli_out.exit_code == 0, cli_out.output
    assert body["audiences"] == json.loads(cli_out.stdout)
    assert body["audiences"]["th"]["becoming_invisible"]
    assert body["audiences"]["my"]["becoming_invisible"]

    # the active policy against itself changes nothing for anyone
    status, body = await node.admin(
        http, "POST", "/admin/v1/policy/diff", data=default_policy_yaml("cn")
    )
    assert status == 200
    for audience, diff in body["audiences"].items():
        assert diff["becoming_visible"] == diff["becoming_invisible"] == [], audience
        assert diff["visible_before"] == diff["visible_after"], audience

    for endpoint in ("check", "diff"):
        url = f"/admin/v1/policy/{endpoint}"
        for empty in (b"", b"\n\n"):
            status, body = await node.admin(http, "POST", url, data=empty)
            assert status == 400 and body["error"]["code"] == "bad_request", endpoint
        status, body = await node.admin(http, "POST", url, data=b"rules: []\n\xff\xfe")
        assert status == 400 and body["error"]["code"] == "bad_request", (endpoint, body)
        status, body = await node.admin(
            http,
            "POST",
            url,
            data=b"rules: []\n",
            headers={"Content-Type": "text/yaml; charset=no-such-charset"},
        )
        assert status == 400 and body["error"]["code"] == "bad_request", (endpoint, body)
        for payload in ("[1, 2]", "rules: {}", "groups: {}\n"):
            status, body = await node.admin(http, "POST", url, data=payload)
            assert status == 422 and body["error"]["code"] == "invalid_policy", payload
            assert body["error"]["issues"], payload
        async with http.post(node.url + url, data=NARROW) as resp:
            assert resp.status == 401
    assert await state(node, http) == before
