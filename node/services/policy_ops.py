"""Operator tools over the policy: check, diff, apply, explain, preview a view.

Shared by ``cattc policy ...`` and ``/admin/v1/policy...`` so both say the same thing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from node.services.audiences import audience_of, known_audiences, membership
from node.services.errors import InvalidInput, NotFound
from node.services.views import reader_envelope, signed_summary
from policies.diff import AudienceDiff, diff_policies
from policies.evaluate import explain
from policies.parse import parse_policy

if TYPE_CHECKING:
    from node.runtime import NodeRuntime


def _live_listings(rt: NodeRuntime) -> list[dict[str, Any]]:
    return [s.record for s in rt.listings.iter_all(include_withdrawn=False)]


def diff_against_active(rt: NodeRuntime, text: str) -> dict[str, AudienceDiff]:
    new = rt.policy.check(text)
    current = rt.policy.active_or_none()
    old = parse_policy(current.text if current else "rules: []\n")
    ms = membership(rt.engine)
    audiences = sorted(
        set(known_audiences(old, ms, rt.node_id)) | set(known_audiences(new, ms, rt.node_id))
    )
    return diff_policies(
        old, new, _live_listings(rt), audiences, rt.clock(), extra_groups=ms.groups
    )


def diff_to_json(diffs: dict[str, AudienceDiff]) -> dict[str, Any]:
    return {
        aud: {
            "visible_before": d.visible_before,
            "visible_after": d.visible_after,
            "becoming_visible": list(d.becoming_visible),
            "becoming_invisible": list(d.becoming_invisible),
            "fields_appearing": d.fields_appearing,
            "fields_disappearing": d.fields_disappearing,
        }
        for aud, d in diffs.items()
    }


def explain_listing(rt: NodeRuntime, listing_id: str, audience_id: str) -> dict[str, Any]:
    if not audience_id:
        raise InvalidInput("say which audience: a node id such as 'th'")
    stored = rt.listings.get(listing_id)
    version, compiled = rt.policy.compiled()
    ms = membership(rt.engine)
    audience = audience_of(audience_id, compiled.policy, ms)
    now = rt.clock()
    exp = explain(stored.record, audience, compiled, now, withdrawn=stored.withdrawn)
    view = None
    if exp.decision.view is not None:
        rule = compiled.policy.rules[exp.rule_index - 1] if exp.rule_index else None
        view, _ = signed_summary(
            issuer=rt.node_id,
            audience=audience_id,
            view=reader_envelope(
                exp.decision.view,
                stored.record,
                reader=audience_id,
                hub_id=rt.config.hub_id,
                compiled=compiled,
                now_ms=now,
            ),
            policy_version=version,
            key=rt.keys.active,
            now_ms=now,
            relay=rule.relay.to_dict() if rule is not None and rule.relay else None,
        )
    return {
        "listing_id": listing_id,
        "audience": audience_id,
        "policy_version": version,
        "shared": view is not None,
        "code": exp.decision.code,
        "reason": exp.decision.reason,
        "rule_index": exp.rule_index,
        "rule": exp.rule,
        "matched": exp.matched,
        "matched_key": exp.matched_key,
        "explanation": list(exp.lines),
        "view": view,
    }


def preview_view(rt: NodeRuntime, listing_id: str, audience_id: str) -> dict[str, Any]:
    """The exact signed object ``audience_id`` would receive, or NotFound saying why not."""
    result = explain_listing(rt, listing_id, audience_id)
    if result["view"] is None:
        raise NotFound(f"{audience_id} receives nothing of {listing_id}: {result['reason']}")
    view: dict[str, Any] = result["view"]
    return view
