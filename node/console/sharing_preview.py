"""What a draft policy would change, per audience, for the console's preview page.

The counts and field changes come from ``diff_against_active`` (the same evaluation the
feeds use, so the preview cannot disagree with what is sent), plus the public (``*``,
what the hub's public search shows) through ``diff_policies``. Each audience also gets one
example: the view it would receive of one listing under the draft. Everything here runs
in a worker thread (``rt.run``): it reads the database and evaluates every listing.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from node.console.sharing_grid import Column, changed_cells, columns_for
from node.services.audiences import audience_of, membership
from node.services.policy_ops import diff_against_active
from policies.compiled import compile_policy
from policies.diff import AudienceDiff, diff_policies
from policies.evaluate import evaluate
from policies.model import STAR, Audience, Policy, Rule
from policies.parse import parse_policy
from protocol.timeutil import ms_to_iso

if TYPE_CHECKING:
    from node.runtime import NodeRuntime

EXAMPLE_VALUE_MAX = 300
LISTED_IDS_MAX = 20
PUBLIC = Audience(STAR, frozenset(), member=False)


@dataclass(frozen=True)
class Example:
    listing_id: str
    category: str
    fields: list[tuple[str, str]]


@dataclass(frozen=True)
class AudienceRow:
    audience: str
    diff: AudienceDiff
    example: Example | None


@dataclass(frozen=True)
class Change:
    category: str
    audience: str
    old: Rule | None
    new: Rule | None
    fields_added: tuple[str, ...] = ()
    fields_removed: tuple[str, ...] = ()


@dataclass(frozen=True)
class Preview:
    active_version: int
    active_author: str
    active_digest: str
    rows: list[AudienceRow]
    changes: list[Change]
    text_diff: str
    identical: bool
    groups_changed: bool = False


@dataclass(frozen=True)
class GridSource:
    """What the grid page needs from the database: the active policy and the audiences."""

    active_text: str
    active_digest: str
    active_version: int
    columns: list[Column]
    directory_groups: dict[str, list[str]]


def grid_source(rt: NodeRuntime, policy: Policy | None = None) -> GridSource:
    """The active policy and the grid's columns for ``policy`` (default: the active one)."""
    current = rt.policy.active_or_none()
    text = current.text if current else "rules: []\n"
    shown = policy if policy is not None else parse_policy(text)
    ms = membership(rt.engine)
    columns = columns_for(
        shown,
        hub_id=rt.config.hub_id,
        own_id=rt.node_id,
        directory_groups=ms.groups,
        directory_nodes=ms.members,
    )
    return GridSource(
        text,
        current.digest if current else "",
        current.version if current else 0,
        columns,
        ms.groups,
    )


TIME_FIELDS = frozenset({"expires", "start", "end", "signed", "deadline", "member_since"})
"""Fields the wire format carries as integer milliseconds."""


def show_value(key: str, value: Any) -> str:
    """A view's field as plain text for a page: text as is, times as ISO dates, a
    language -> text object as "en: ... / vi: ...", anything else as JSON."""
    if key in TIME_FIELDS and isinstance(value, int) and not isinstance(value, bool):
        return ms_to_iso(value)
    if isinstance(value, str):
        text = value
    elif isinstance(value, dict) and value and all(isinstance(v, str) for v in value.values()):
        text = " / ".join(f"{k}: {v}" for k, v in value.items())
    else:
        text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= EXAMPLE_VALUE_MAX else text[: EXAMPLE_VALUE_MAX - 1] + "…"


def _example(
    listings: list[dict[str, Any]],
    audience: Audience,
    compiled: Any,
    now: int,
    prefer: set[str],
    categories: set[str],
) -> Example | None:
    """The view of one listing: preferably one appearing, else one of a changed category."""
    ordered = sorted(
        listings,
        key=lambda r: (
            str(r["id"]) not in prefer,
            r["category"] not in categories,
            str(r["id"]),
        ),
    )
    for record in ordered:
        view = evaluate(record, audience, compiled, now).view
        if view is not None:
            fields = [(k, show_value(k, v)) for k, v in sorted(view["fields"].items())]
            return Example(str(record["id"]), str(record["category"]), fields)
    return None


def _change(category: str, audience: str, old: Rule | None, new: Rule | None) -> Change:
    before = set(old.fields) if old else set()
    after = set(new.fields) if new else set()
    return Change(
        category,
        audience,
        old,
        new,
        tuple(f for f in (new.fields if new else ()) if f not in before),
        tuple(f for f in (old.fields if old else ()) if f not in after),
    )


def build_preview(rt: NodeRuntime, text: str) -> Preview:
    """Per audience (the counterparts, then ``*``): counts before and after, listings and
    fields appearing or disappearing, one example view. Raises ``InvalidPolicy``."""
    diffs = diff_against_active(rt, text)
    current = rt.policy.active_or_none()
    old_text = current.text if current else "rules: []\n"
    old, new = parse_policy(old_text), parse_policy(text)
    listings = [s.record for s in rt.listings.iter_all(include_withdrawn=False)]
    now = rt.clock()
    diffs.update(diff_policies(old, new, listings, [PUBLIC], now))
    compiled = compile_policy(new)
    ms = membership(rt.engine)
    changes = [_change(*c) for c in changed_cells(old, new)]
    categories = {c.category for c in changes}
    rows = []
    for name in [*sorted(a for a in diffs if a != STAR), STAR]:
        diff = diffs[name]
        audience = PUBLIC if name == STAR else audience_of(name, new, ms)
        prefer = set(diff.becoming_visible)
        example = _example(listings, audience, compiled, now, prefer, categories)
        rows.append(AudienceRow(name, diff, example))
    unified = "".join(
        difflib.unified_diff(
            old_text.splitlines(keepends=True),
            text.splitlines(keepends=True),
            fromfile=f"version {current.version}" if current else "none",
            tofile="draft",
        )
    )
    return Preview(
        active_version=current.version if current else 0,
        active_author=current.author if current else "",
        active_digest=current.digest if current else "",
        rows=rows,
        changes=changes,
        text_diff=unified,
        identical=old_text == text,
        groups_changed=dict(old.groups) != dict(new.groups),
    )


def shown_ids(ids: tuple[str, ...]) -> list[str]:
    """The first listing ids of a long list, for the page (the count says the rest)."""
    return list(ids[:LISTED_IDS_MAX])
