"""Evaluation: one listing x one audience -> the view that may leave, or why nothing does.

This is the single place that decides what a counterpart learns of a listing (DESIGN 3.2,
3.6, 7). It is pure and deterministic: time is a parameter, nothing is random, and the
result does not depend on the order of keys in the input. It works on the plain wire
dict (``protocol.listing.listing_to_wire`` output, times in integer ms), never on
pydantic models, because it runs for every listing and every counterpart.

Order of the checks (the first that fails gives the reason code): withdrawn; private;
expired (``expires <= now_ms``); bilateral and the audience not in ``share_with``;
network and the audience not a member; no rule (deny by default); the rule's visibility
list lacks the listing's visibility. Otherwise the view is built from the rule's fields.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from protocol.timeutil import ms_to_iso

from .compiled import (
    CompiledPolicy,
    CompiledRule,
    FieldOp,
    Match,
    MatchKind,
    compile_fields,
    compile_policy,
    copy_json,
    covers,
    project,
)
from .model import STAR, Audience, Policy, Relay
from .names import NAME_FIELDS, descriptor, owner_words, redact_fields, withheld_names

__all__ = [
    "REASON_CODES",
    "Audience",
    "CompiledPolicy",
    "Decision",
    "Explanation",
    "Match",
    "audience_for",
    "build_view",
    "compile_policy",
    "evaluate",
    "explain",
    "relay_view",
]

REASON_CODES = (
    "shared",
    "no_rule",
    "private",
    "not_in_share_with",
    "not_member",
    "visibility_not_in_rule",
    "expired",
    "withdrawn",
)


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome for one listing and one audience.

    ``view`` is the ``listing`` member of a listing summary (DESIGN 6.1) or None;
    ``rule_index`` the 1-based number of the deciding rule (None when the listing itself
    or the absence of a rule decided); ``code`` one of ``REASON_CODES``.
    """

    view: dict[str, Any] | None
    rule_index: int | None
    reason: str
    code: str

    @property
    def shared(self) -> bool:
        return self.view is not None


_WITHDRAWN = Decision(None, None, "the listing is withdrawn; it is never shared", "withdrawn")
_PRIVATE = Decision(None, None, "the listing is private; it never leaves the node", "private")
_EXPIRED = Decision(None, None, "the listing has expired; it is no longer shared", "expired")
_NOT_IN_SHARE_WITH = Decision(
    None,
    None,
    "the listing is bilateral and the audience is not in share_with",
    "not_in_share_with",
)
_NOT_MEMBER = Decision(
    None, None, "the listing is for network members and the audience is not one", "not_member"
)
_NO_RULE = Decision(
    None, None, "no rule names this audience, its groups or '*' for the category", "no_rule"
)


def audience_for(
    node_id: str,
    policy: Policy | CompiledPolicy,
    extra_groups: Mapping[str, Collection[str]] | None = None,
    *,
    member: bool = True,
) -> Audience:
    """The audience for ``node_id``: the policy's groups listing it, plus the groups of
    ``extra_groups`` (group name -> node ids, e.g. from the member directory) listing it."""
    plain = policy.policy if isinstance(policy, CompiledPolicy) else policy
    groups = set(plain.groups_of(node_id))
    for name, members in (extra_groups or {}).items():
        if node_id in members:
            groups.add(name)
    return Audience(node_id, frozenset(groups), member)


def evaluate(
    listing: Mapping[str, Any],
    audience: Audience,
    policy: CompiledPolicy | Policy,
    now_ms: int,
    *,
    withdrawn: bool = False,
) -> Decision:
    """Decide whether ``listing`` goes to ``audience`` and build the view if it does.

    Pass a ``CompiledPolicy`` (``compile_policy``) when evaluating more than once; a plain
    ``Policy`` is compiled on every call.
    """
    if withdrawn:
        return _WITHDRAWN
    visibility = listing["visibility"]
    if visibility == "private":
        return _PRIVATE
    if listing["expires"] <= now_ms:
        return _EXPIRED
    if visibility == "bilateral":
        if audience.node_id not in (listing.get("share_with") or ()):
            return _NOT_IN_SHARE_WITH
    elif visibility == "network" and not audience.member:
        return _NOT_MEMBER
    compiled = policy if isinstance(policy, CompiledPolicy) else compile_policy(policy)
    rule = compiled.lookup(audience, listing["category"])
    if rule is None:
        return _NO_RULE
    if visibility not in rule.visibility:
        return Decision(
            None,
            rule.index,
            f"rule {rule.index} shares only {', '.join(rule.rule.visibility)} listings, "
            f"not {visibility}",
            "visibility_not_in_rule",
        )
    return Decision(build_view(listing, rule), rule.index, rule.shared_reason, "shared")


def build_view(listing: Mapping[str, Any], rule: CompiledRule) -> dict[str, Any]:
    """The summary's ``listing`` member: envelope, allowed fields, and rights."""
    rights = listing.get("rights") or {}
    consent = rights.get("name_logo_consent") is True
    fields = project(rule.ops, listing, consent, listing)
    owners = rights.get("ip_owner") or ()
    if consent and rule.reveals_owners:
        ip_owner = list(owners)
        hidden_owners: dict[str, str] = {}
    else:
        ip_owner = owner_words(listing, owners)
        hidden_owners = {o: w for o, w in zip(owners, ip_owner, strict=True) if type(o) is str}
    if rule.free_text:
        hidden = withheld_names(
            listing, rule.unnamed_names if consent else rule.all_names, hidden_owners
        )
        if hidden:
            redact_fields(fields, hidden)
    attribution: list[str] | str = []
    if "summary" in fields:
        authors = rights.get("attribution")
        if authors == "declined":
            attribution = "declined"
        elif type(authors) is list:
            attribution = copy_json(authors)
            if rule.rule.category == "expert" and not (consent and rule.shows_person):
                # An expert's attribution names the expert: it follows the name's rule.
                name = listing.get("name")
                words = descriptor("person", listing)
                attribution = [words if author == name else author for author in attribution]
    return {
        "id": listing["id"],
        "category": listing["category"],
        "version": listing["version"],
        "updated": listing["updated"],
        "expires": listing["expires"],
        "fields": fields,
        "rights": {
            "ip_owner": ip_owner,
            "attribution": attribution,
            "name_logo_consent": consent,
        },
    }


def relay_applies(relay: Relay, recipient: Audience) -> bool:
    """True if the relay's ``to`` names the recipient, one of its groups, or ``*``."""
    return any(
        target in (STAR, recipient.node_id) or target in recipient.groups for target in relay.to
    )


def relay_view(
    view_fields: Mapping[str, Any], relay_rule: Relay | None, recipient: Audience
) -> dict[str, Any] | None:
    """What the hub may pass on to ``recipient`` of the ``fields`` of a view it received:
    the subset the owner's relay rule names, or None when the rule does not cover the
    recipient (or there is none). Names in a view are already consented or anonymised."""
    if relay_rule is None or not relay_applies(relay_rule, recipient):
        return None
    return project(_relay_ops(relay_rule.fields), view_fields, True, view_fields)


@lru_cache(maxsize=256)
def _relay_ops(fields: tuple[str, ...]) -> tuple[FieldOp, ...]:
    return compile_fields(fields, None)


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why a listing does or does not reach an audience, for people (DESIGN 3.6).

    ``matched`` says how the rule was found: by ``node`` id, by ``group`` (``matched_key``
    names it) or by ``*``; None when no rule names the audience.
    """

    decision: Decision
    rule: dict[str, Any] | None
    rule_index: int | None
    matched: MatchKind | None
    matched_key: str | None
    lines: tuple[str, ...]

    def text(self) -> str:
        return "\n".join(self.lines)


def explain(
    listing: Mapping[str, Any],
    audience: Audience,
    policy: CompiledPolicy | Policy,
    now_ms: int,
    *,
    withdrawn: bool = False,
) -> Explanation:
    """The decision for ``listing`` and ``audience``, the rule behind it and why."""
    compiled = policy if isinstance(policy, CompiledPolicy) else compile_policy(policy)
    decision = evaluate(listing, audience, compiled, now_ms, withdrawn=withdrawn)
    category = str(listing.get("category"))
    match = compiled.match(audience, category)
    lines = [_describe(listing, audience, now_ms)]
    lines.extend(_rule_lines(match, audience, category))
    if decision.view is None:
        lines.append(f"not shared ({decision.code}): {decision.reason}")
    else:
        assert match is not None
        lines.extend(_view_lines(listing, decision.view, match.rule))
    return Explanation(
        decision=decision,
        rule=None if match is None else match.rule.rule.to_dict(),
        rule_index=None if match is None else match.rule.index,
        matched=None if match is None else match.kind,
        matched_key=None if match is None else match.key,
        lines=tuple(lines),
    )


def _describe(listing: Mapping[str, Any], audience: Audience, now_ms: int) -> str:
    visibility = str(listing.get("visibility"))
    if visibility == "bilateral":
        visibility += f" (share_with: {', '.join(listing.get('share_with') or ()) or 'nobody'})"
    expires = listing.get("expires")
    when = ms_to_iso(expires) if isinstance(expires, int) else "?"
    state = "expired" if isinstance(expires, int) and expires <= now_ms else "expires"
    groups = ", ".join(sorted(audience.groups)) or "none"
    who = "a member" if audience.member else "not a member"
    return (
        f"listing {listing.get('id')} ({listing.get('category')}, version "
        f"{listing.get('version')}, {visibility}; {state} {when}) for audience "
        f"{audience.node_id} ({who}; groups: {groups})"
    )


def _rule_lines(match: Match | None, audience: Audience, category: str) -> list[str]:
    if match is None:
        return [
            f"no rule for {category} names {audience.node_id}, its groups or '*': "
            "nothing is shared (deny by default)"
        ]
    rule = match.rule
    how = {
        "node": f"by node id {match.key}",
        "group": f"by group {match.key}",
        "*": "by '*' (no rule names the node or its groups)",
    }[match.kind]
    lines = [
        f"rule {rule.index} applies, {how}: visibility {', '.join(rule.rule.visibility)}; "
        f"fields {', '.join(rule.rule.fields)}"
    ]
    same_level = [r for r in match.passed_over if r.rule.audience in audience.groups]
    less_specific = [r for r in match.passed_over if r not in same_level]
    if match.kind == "group" and same_level:
        others = ", ".join(f"rule {r.index} (group {r.rule.audience})" for r in same_level)
        verb = "is" if len(same_level) == 1 else "are"
        lines.append(
            f"{audience.node_id} is in several groups with a rule for {category}; the first in "
            f"file order wins, so {others} {verb} not used"
        )
    elif same_level:
        less_specific = list(match.passed_over)
    if less_specific:
        others = ", ".join(f"rule {r.index} ({r.rule.audience})" for r in less_specific)
        verb = "is" if len(less_specific) == 1 else "are"
        lines.append(f"this rule is more specific than {others}, which {verb} not used")
    return lines


def _view_lines(
    listing: Mapping[str, Any], view: Mapping[str, Any], rule: CompiledRule
) -> list[str]:
    fields = view["fields"]
    lines = [f"shared: fields {', '.join(fields) or '(none)'}"]
    absent = [path for path in rule.rule.fields if path.partition(".")[0] not in fields]
    if absent:
        lines.append(f"named by the rule but absent in the listing: {', '.join(absent)}")
    rights = view["rights"]
    consent = rights["name_logo_consent"]
    for path in NAME_FIELDS.get(rule.rule.category, {}):
        if covers(rule.rule.fields, path) and path.partition(".")[0] in fields:
            state = (
                "shown (name/logo consent given)"
                if consent
                else "anonymised (no name/logo consent)"
            )
            lines.append(f"name field {path}: {state}")
    owners = "names" if consent and rule.reveals_owners else "descriptors"
    lines.append(f"rights.ip_owner as {owners}: {', '.join(rights['ip_owner']) or '(none)'}")
    attribution = rights["attribution"]
    if attribution == "declined":
        lines.append("attribution declined by the authors")
    elif "summary" not in fields:
        lines.append("no attribution: the view does not carry the summary")
    else:
        lines.append(f"attribution: {', '.join(attribution) or '(none)'}")
    return lines
