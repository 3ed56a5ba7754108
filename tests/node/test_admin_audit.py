"""Changes made through the admin API (a script holding the node's token) are in the
audit log as ``admin-token``, as the console's and the CLI's are; refused ones are not."""

from __future__ import annotations

import json

import aiohttp
from sqlalchemy import select
from sqlalchemy.orm import Session

from node.storage.models import AuditRow
from policies.write import default_policy_yaml
from tests.federation.network import NodeFactory
from tests.node.sample import sample_record, sample_records
from tests.nodes import RunningNode


def log(node: RunningNode) -> list[tuple[str, str, str, str]]:
    with Session(node.runtime.engine) as s:
        rows = s.scalars(select(AuditRow).order_by(AuditRow.id))
        return [(r.actor, r.action, r.target, r.detail) for r in rows]


async def test_admin_api_changes_are_audited(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    node = await node_factory("vn")
    record = sample_record("vn-off-0001")
    status, created = await node.admin(http, "POST", "/admin/v1/listings", json=record)
    assert status == 201
    v = created["version"]
    status, _ = await node.admin(http, "POST", "/admin/v1/listings", json={"title": 1})
    assert status == 422  # refused: nothing to audit
    record["summary"] = "A changed summary."
    status, _ = await node.admin(http, "PUT", "/admin/v1/listings/vn-off-0001", json=record)
    assert status == 200, _
    status, _ = await node.admin(http, "POST", "/admin/v1/listings/vn-off-0001/withdraw")
    assert status == 200, _
    lines = "\n".join(json.dumps(r) for r in sample_records("vn")[1:3])
    status, _ = await node.admin(http, "POST", "/admin/v1/listings/import", data=lines.encode())
    assert status == 200, _
    text = default_policy_yaml(node.runtime.config.hub_id) + "\n# a comment\n"
    status, applied = await node.admin(
        http, "PUT", "/admin/v1/policy?author=ops", data=text.encode()
    )
    assert status == 200, applied
    assert log(node) == [
        ("admin-token", "listing.create", "vn-off-0001", f"version {v}"),
        ("admin-token", "listing.update", "vn-off-0001", f"version {v + 1}"),
        ("admin-token", "listing.withdraw", "vn-off-0001", f"version {v + 2}"),
        (
            "admin-token",
            "listing.import",
            "listings",
            "2 created, 0 updated, 0 unchanged, 0 rejected",
        ),
        ("admin-token", "policy.apply", f"policy version {applied['version']}", "author: ops"),
    ]
