"""Who the counterparts are: node ids and their groups, from the policy, the member
directory (``members``) and the bilateral peers of the config."""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from node.storage.models import MemberRow
from policies.evaluate import audience_for
from policies.model import Audience, Policy


@dataclass(frozen=True)
class Membership:
    groups: dict[str, list[str]]
    members: frozenset[str]
    suspended: frozenset[str]


def membership(engine: Engine, extra_members: frozenset[str] = frozenset()) -> Membership:
    """Groups and members as the directory held in this database says."""
    groups: dict[str, list[str]] = {}
    members: set[str] = set(extra_members)
    suspended: set[str] = set()
    with Session(engine) as session:
        for row in session.scalars(select(MemberRow)):
            if row.status == "suspended":
                suspended.add(row.node_id)
                continue
            members.add(row.node_id)
            for group in json.loads(row.groups):
                groups.setdefault(group, []).append(row.node_id)
    return Membership(groups, frozenset(members), frozenset(suspended))


def audience_of(node_id: str, policy: Policy, ms: Membership) -> Audience:
    in_policy = any(node_id in nodes for nodes in policy.groups.values())
    member = (node_id in ms.members or in_policy) and node_id not in ms.suspended
    return audience_for(node_id, policy, ms.groups, member=member)


def known_audiences(policy: Policy, ms: Membership, own_id: str) -> list[str]:
    ids = set(ms.members)
    for policy_nodes in policy.groups.values():
        ids.update(policy_nodes)
    for member_nodes in ms.groups.values():
        ids.update(member_nodes)
    ids.discard(own_id)
    return sorted(ids)
