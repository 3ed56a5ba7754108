"""Writing policies as YAML, and the default policy a new node starts from.

``policy_to_yaml`` gives every policy one layout (the one DESIGN 7 shows: flow lists,
wrapped at 100 columns), so a policy saved through the admin API reads like one written
by hand and ``parse_policy`` reads it back equal. ``default_policy_yaml`` is the policy
``init`` writes: cautious, deny by default, no contact details anywhere.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from .model import NODE_ID_RE, Policy, Relay, Rule

_YAML_SPECIAL = frozenset({"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"})
_PLAIN_OK = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_.")
_WIDTH = 100

MOU = ("cn", "th", "la", "kh", "mm", "vn", "bn", "id")
NO_MOU = ("my", "ph")

_COMMON = ("title", "summary", "keywords", "ipc", "isic", "sector")
OFFER_FIELDS = (
    *_COMMON,
    *("trl", "stage", "ipr_status", "partnership", "target_countries"),
    *("organization.type", "expires", "country"),
)
REQUEST_FIELDS = (
    *_COMMON,
    *("need", "trl_min", "partnership", "budget_range", "deadline"),
    *("organization.type", "expires", "country"),
)
EXPERT_FIELDS = (
    *("title", "summary", "keywords", "ipc", "isic"),
    *("name", "job_title", "affiliation", "fields", "languages", "sectors", "expires", "country"),
)
BRIEF_FIELDS = ("title", "summary", "keywords")
OFFER_RELAY = Relay(("mou",), ("title", "keywords", "ipc", "trl"))
REQUEST_RELAY = Relay(("mou",), ("title", "keywords", "ipc", "trl_min", "partnership"))

_HEADER = """\
# Sharing policy (DESIGN 7). Deny by default: whatever no rule names stays on this node.
# Audience: a node id, a group below, or "*"; a node-id rule beats a group rule beats "*".
# No rule names contact details. Organisation and person names (name, affiliation) leave
# only with the listing's name/logo consent; otherwise the view says "a university in ...".
# Offers and requests go to the hub ({hub}) and to the MoU centers; the hub may relay
# titles, keywords, IPC and TRL to MoU centers in match notices. Centers without an MoU
# get public offers and requests only, title, summary and keywords. Experts go to the
# hub only. Private and bilateral listings are not shared by these rules.
"""


def _scalar(value: str) -> str:
    if value and set(value) <= _PLAIN_OK and value[0].isalpha() and value not in _YAML_SPECIAL:
        return value
    return json.dumps(value, ensure_ascii=False)


def _flow(indent: str, key: str, items: Sequence[str]) -> list[str]:
    """``key: [a, b, c]``, wrapped under the opening bracket when longer than the width."""
    head = f"{indent}{key}: ["
    lines: list[str] = []
    line = head
    for i, item in enumerate(items):
        piece = _scalar(item) + ("," if i < len(items) - 1 else "]")
        if line != head and len(line) + 1 + len(piece) > _WIDTH:
            lines.append(line)
            line = " " * len(head) + piece
        else:
            line = line + ("" if line == head else " ") + piece
    if not items:
        line += "]"
    lines.append(line)
    return lines


def policy_to_yaml(policy: Policy) -> str:
    """The policy as YAML in the layout of DESIGN 7; ``parse_policy`` reads it back equal."""
    lines: list[str] = []
    if policy.groups:
        lines.append("groups:")
        for name, members in policy.groups.items():
            lines.extend(_flow("  ", _scalar(name), members))
    if not policy.rules:
        lines.append("rules: []")
        return "\n".join(lines) + "\n"
    lines.append("rules:")
    for rule in policy.rules:
        lines.append(f"  - audience: {_scalar(rule.audience)}")
        lines.append(f"    category: {_scalar(rule.category)}")
        lines.extend(_flow("    ", "visibility", rule.visibility))
        lines.extend(_flow("    ", "fields", rule.fields))
        if rule.relay is not None:
            lines.append("    relay:")
            lines.extend(_flow("      ", "to", rule.relay.to))
            lines.extend(_flow("      ", "fields", rule.relay.fields))
    return "\n".join(lines) + "\n"


def default_policy(hub_id: str = "cn") -> Policy:
    """The default policy as a value (see ``default_policy_yaml``)."""
    if not NODE_ID_RE.match(hub_id) or hub_id in ("mou", "no_mou"):
        raise ValueError(f"hub id {hub_id!r} is not a node id")
    shared = ("public", "network")
    return Policy(
        groups={"mou": MOU, "no_mou": NO_MOU},
        rules=(
            Rule(hub_id, "tech_offer", shared, OFFER_FIELDS, OFFER_RELAY),
            Rule(hub_id, "tech_request", shared, REQUEST_FIELDS, REQUEST_RELAY),
            Rule(hub_id, "expert", shared, EXPERT_FIELDS),
            Rule("mou", "tech_offer", shared, OFFER_FIELDS),
            Rule("mou", "tech_request", shared, REQUEST_FIELDS),
            Rule("no_mou", "tech_offer", ("public",), BRIEF_FIELDS),
            Rule("no_mou", "tech_request", ("public",), BRIEF_FIELDS),
        ),
    )


def default_policy_yaml(hub_id: str = "cn") -> str:
    """The policy a new node starts from, as commented YAML.

    Offers and requests (public and network) go, without contact details or names, to
    the hub and the ``mou`` group; public ones go to ``no_mou`` with title, summary and
    keywords only; experts (public and network) go to the hub without contact details.
    """
    return _HEADER.format(hub=hub_id) + policy_to_yaml(default_policy(hub_id))


DEFAULT_POLICY_YAML = default_policy_yaml()
"""The default policy for a network whose hub is ``cn``."""
