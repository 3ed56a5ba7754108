"""Admin API of a real node on a loopback port: auth, CRUD, paging, errors."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from tests.node.sample import sample_record, sample_records
from tests.nodes import RunningNode

NodeFactory = Callable[..., Awaitable[RunningNode]]


async def test_missing_or_wrong_token_is_401(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    node = await node_factory("vn")
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic token-vn"}):
        async with http.get(node.url + "/admin/v1/listings", headers=headers) as resp:
            assert resp.status == 401
            body = await resp.json()
            assert body["error"]["code"] == "unauthorized"
    # nothing was created by a refused write
    async with http.post(
        node.url + "/admin/v1/listings",
        json=sample_record("vn-off-0001"),
        headers={"Authorization": "Bearer nope"},
    ) as resp:
        assert resp.status == 401
    assert node.runtime.listings.counts() == {}


async def test_create_get_update_withdraw(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    node = await node_factory("vn")
    record = sample_record("vn-off-0001")
    status, created = await node.admin(http, "POST", "/admin/v1/listings", json=record)
    assert status == 201, created
    assert created["id"] == "vn-off-0001"
    assert created["version"] == record["version"]
    assert isinstance(created["created"], int)

    status, again = await node.admin(http, "POST", "/admin/v1/listings", json=record)
    assert status == 409 and again["error"]["code"] == "conflict"

    changed = {**record, "summary": record["summary"] + " Now also for shrimp."}
    status, updated = await node.admin(http, "PUT", "/admin/v1/listings/vn-off-0001", json=changed)
    assert status == 200
    assert updated["version"] == created["version"] + 1
    assert updated["summary"].endswith("shrimp.")

    # the same content again changes no version
    status, same = await node.admin(http, "PUT", "/admin/v1/listings/vn-off-0001", json=changed)
    assert status == 200 and same["version"] == updated["version"]

    status, got = await node.admin(http, "GET", "/admin/v1/listings/vn-off-0001")
    assert status == 200 and got["listing"]["version"] == updated["version"]
    assert got["withdrawn"] is False

    status, gone = await node.admin(http, "POST", "/admin/v1/listings/vn-off-0001/withdraw")
    assert status == 200 and gone == {
        "id": "vn-off-0001",
        "version": updated["version"] + 1,
        "withdrawn": True,
    }
    status, listed = await node.admin(http, "GET", "/admin/v1/listings")
    assert listed["items"] == []
    status, listed = await node.admin(http, "GET", "/admin/v1/listings?include_withdrawn=true")
    assert [i["withdrawn"] for i in listed["items"]] == [True]
    status, refused = await node.admin(http, "PUT", "/admin/v1/listings/vn-off-0001", json=changed)
    assert status == 409

    # every change is in the change log, in order, ending with the tombstone
    kinds = _change_kinds(node)
    v = created["version"]
    assert kinds == [
        ("vn-off-0001", v, "upsert"),
        ("vn-off-0001", v + 1, "upsert"),
        ("vn-off-0001", v + 2, "withdraw"),
    ]


def _change_kinds(node: RunningNode) -> list[tuple[str, int, str]]:
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from node.storage.models import ChangeRow

    with Session(node.runtime.engine) as s:
        rows = s.execute(select(ChangeRow).order_by(ChangeRow.seq)).scalars()
        return [(r.listing_id, r.version, r.kind) for r in rows]


async def test_create_fills_defaults_and_generates_id(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    node = await node_factory("vn")
    record = sample_record("vn-req-0001")
    for key in ("id", "owner", "country", "created", "updated", "version"):
        record.pop(key)
    status, created = await node.admin(http, "POST", "/admin/v1/listings", json=record)
    assert status == 201, created
    assert (
        created["id"] == "vn-req-0001" and created["owner"] == "vn" and created["country"] == "VN"
    )
    status, second = await node.admin(http, "POST", "/admin/v1/listings", json=record)
    assert second["id"] == "vn-req-0002"


async def test_invalid_listing_is_422_naming_the_field(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    node = await node_factory("vn")
    cases: list[tuple[dict[str, Any], str]] = []
    bad = sample_record("vn-off-0001")
    bad["trl"] = 12
    cases.append((bad, "trl"))
    bad = sample_record("vn-off-0001")
    bad["title"] = {"vi": "chỉ tiếng Việt"}
    cases.append((bad, "title"))
    bad = sample_record("vn-off-0001")
    bad["country"] = "XX"
    cases.append((bad, "country"))
    bad = sample_record("vn-off-0001")
    bad["contact"]["fax"] = "1"
    cases.append((bad, "contact.fax"))
    bad = sample_record("vn-off-0001")
    bad["owner"] = "th"
    cases.append((bad, "owner"))
    for record, field in cases:
        status, body = await node.admin(http, "POST", "/admin/v1/listings", json=record)
        assert status == 422, (field, body)
        assert body["error"]["code"] == "invalid_listing"
        assert f"'{field}'" in body["error"]["message"] or field == "owner", body
    assert node.runtime.listings.counts() == {}


async def test_malformed_json_is_400(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    node = await node_factory("vn")
    for body in (b"{not json", b"", b'{"a": NaN}', b'{"a": 1, "a": 2}'):
        async with http.post(
            node.url + "/admin/v1/listings", data=body, headers=node.admin_headers
        ) as resp:
            assert resp.status == 400
            assert (await resp.json())["error"]["code"] == "invalid_json"


async def test_oversized_body_is_413(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    node = await node_factory("vn", max_body_bytes=4096)
    record = sample_record("vn-off-0001")
    record["summary"] = "x" * 5000
    status, body = await node.admin(http, "POST", "/admin/v1/listings", json=record)
    assert status == 413 and body["error"]["code"] == "body_too_large"

    async def chunks() -> Any:  # no Content-Length: the limit holds while reading
        for _ in range(10):
            yield b"x" * 1024

    async with http.post(
        node.url + "/admin/v1/listings", data=chunks(), headers=node.admin_headers
    ) as resp:
        assert resp.status == 413
        assert (await resp.json())["error"]["code"] == "body_too_large"
    assert node.runtime.listings.counts() == {}


async def test_list_filters_and_pages(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    node = await node_factory("vn")
    lines = "\n".join(__import__("json").dumps(r) for r in sample_records("vn"))
    status, report = await node.admin(http, "POST", "/admin/v1/listings/import", data=lines)
    assert status == 200 and report["created"] == 21

    seen: list[str] = []
    after = ""
    while True:
        status, page = await node.admin(http, "GET", f"/admin/v1/listings?limit=5{after}")
        assert status == 200 and len(page["items"]) <= 5
        seen += [i["listing"]["id"] for i in page["items"]]
        if page["next"] is None:
            break
        after = f"&after={page['next']}"
    assert seen == sorted(r["id"] for r in sample_records("vn"))

    status, offers = await node.admin(http, "GET", "/admin/v1/listings?category=tech_offer")
    assert len(offers["items"]) == 4
    status, public = await node.admin(
        http, "GET", "/admin/v1/listings?visibility=public&category=tech_request"
    )
    assert {i["listing"]["visibility"] for i in public["items"]} == {"public"}
    status, text = await node.admin(http, "GET", "/admin/v1/listings?q=RICE")
    assert text["items"] and all(
        "rice" in i["listing"]["title"]["en"].lower() for i in text["items"]
    )

    for bad in ("limit=0", "limit=5000", "category=spaceship", "unknown=1"):
        status, err = await node.admin(http, "GET", f"/admin/v1/listings?{bad}")
        assert status == 400 and err["error"]["code"] == "bad_request", bad


async def test_unknown_listing_404_and_unknown_route_404(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    node = await node_factory("vn")
    status, body = await node.admin(http, "GET", "/admin/v1/listings/vn-off-9999")
    assert status == 404 and body["error"]["code"] == "not_found"
    async with http.get(node.url + "/nothing-here") as resp:
        assert resp.status == 404
        assert (await resp.json())["error"]["code"] == "not_found"


def refuse_audit_entries(node: RunningNode, db_engine_name: str) -> None:
    """A trigger that makes every insert into the audit log fail: a change whose entry
    is written in its own transaction then fails whole, or is kept without its entry."""
    with node.runtime.engine.begin() as conn:
        if db_engine_name == "sqlite":
            conn.exec_driver_sql(
                "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log "
                "BEGIN SELECT RAISE(ABORT, 'audit refused'); END"
            )
        else:
            conn.exec_driver_sql(
                "CREATE FUNCTION refuse_audit() RETURNS trigger AS "
                "$$ BEGIN RAISE EXCEPTION 'audit refused'; END $$ LANGUAGE plpgsql"
            )
            conn.exec_driver_sql(
                "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log "
                "FOR EACH ROW EXECUTE FUNCTION refuse_audit()"
            )


async def test_a_change_and_its_audit_entry_commit_together(
    node_factory: NodeFactory, http: aiohttp.ClientSession, db_engine_name: str
) -> None:
    """The admin API wrote the audit entry in a transaction after the change's: a node
    stopped between them (an import's 7 s stop) kept 2,800 imported listings and no entry
    of them. Here the entry cannot be written, and the change is not kept either."""
    node = await node_factory("vn")
    record = sample_record("vn-off-0001")
    status, _ = await node.admin(http, "POST", "/admin/v1/listings", json=record)
    assert status == 201
    refuse_audit_entries(node, db_engine_name)
    line = json.dumps(sample_record("vn-off-0003")) + "\n"
    calls: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "/admin/v1/listings", {"json": sample_record("vn-off-0002")}),
        ("PUT", "/admin/v1/listings/vn-off-0001", {"json": {**record, "summary": "changed"}}),
        ("POST", "/admin/v1/listings/vn-off-0001/withdraw", {}),
        ("POST", "/admin/v1/listings/import", {"data": line}),
    ]
    for method, path, kwargs in calls:
        status, body = await node.admin(http, method, path, **kwargs)
        assert status == 500, (path, status, body)
    stored, _ = node.runtime.listings.query(include_withdrawn=True)
    assert [(s.record["id"], s.record["version"], s.withdrawn) for s in stored] == [
        ("vn-off-0001", record["version"], False)
    ]
