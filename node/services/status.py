"""A node's status summary, shared by ``cattc status`` and ``GET /admin/v1/status``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from node.runtime import NodeRuntime


def node_status(rt: NodeRuntime) -> dict[str, Any]:
    counts = rt.listings.counts()
    active = {cat: sum(n for k, n in v.items() if k != "withdrawn") for cat, v in counts.items()}
    return {
        "node_id": rt.config.node_id,
        "country": rt.config.country,
        "name": rt.config.name,
        "base_url": rt.config.resolved_base_url(),
        "key": rt.keys.active.name,
        "listings": active,
        "by_visibility": counts,
        "change_log_head": rt.listings.head(),
    }
