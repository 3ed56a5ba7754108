"""Property: a match notice says nothing its recipient could not have obtained itself.

Generated policies x listings x audiences (well over 10,000 cases): the listing is owned
by the hub (cn) or by a member (vn) with the generated policy; the matcher's output is
simulated at its worst (shared terms and codes drawn from every field of the listing,
contact details included). For each recipient the oracle is what it could obtain on its
own: the owner's view for it, the owner's view for the public (``*``, public search) and
the fields the owner's relay rule lets the hub pass on to it. Every word a notice carries
must come from those (or from the notice's fixed wording), and a notice naming the
listing exists only if one of them does. Each field of a generated listing uses words of
its own, so a word from a field the recipient may not see shows up as a leak.
"""

from __future__ import annotations

import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.hub.notice_content import Knowable, held_knowable, match_notice, own_knowable
from node.matching.codes import isic_section_of_division
from node.services.views import reader_envelope
from policies.compiled import CompiledPolicy, compile_policy
from policies.evaluate import evaluate, relay_view
from policies.model import STAR, Audience, Policy, Relay, Rule

NOW = 1_800_000_000_000
HUB = "cn"
MEMBER = "vn"
NODES = ("aa", "bb", "cc", "dd", "ee", "ff")
GROUPS = ("g1", "g2")
CASES_WANTED = 10_000
_WORD = re.compile(r"\w+", re.UNICODE)
# The notice's own wording, not taken from the listing.
FIXED = {"a", "listing", "held", "by", "the", "center", "of", "china", "vietnam"}
FIXED |= {"ipc", "isic", "section", "class"}

FIELDS: dict[str, tuple[str, ...]] = {
    "tech_offer": (
        *("title", "summary", "keywords", "ipc", "isic", "trl", "stage"),
        *("organization", "organization.type", "organization.name", "contact"),
    ),
    "tech_request": (
        *("title", "summary", "keywords", "ipc", "isic", "need", "trl_min"),
        *("organization", "organization.type", "organization.name", "contact"),
    ),
    "expert": (
        *("title", "summary", "keywords", "ipc", "isic", "name", "affiliation"),
        *("job_title", "fields", "contact"),
    ),
}
IPC = ("A01G 9/14", "A01B", "C12N 15/00", "H01M", "G08B 21/10")
ISIC = ("01", "0111", "28", "72", "10")


def _text(field: str, n: int) -> str:
    """Words no other field uses: ``summary`` -> "summaryw0 summaryw1 ..."."""
    return " ".join(f"{field.replace('.', '')}w{i}" for i in range(n))


def _subset(items: tuple[str, ...], mask: int) -> tuple[str, ...]:
    return tuple(item for i, item in enumerate(items) if mask >> i & 1)


CATEGORIES = tuple(sorted(FIELDS))
VISIBILITIES = ("public", "network", "bilateral", "private")
TARGETS = (*NODES, *GROUPS, STAR)
AUDIENCES = (*TARGETS, HUB)
_MASK = st.integers(0, 2**12 - 1)


@st.composite
def listings(draw: st.DrawFn) -> dict[str, Any]:
    """A listing whose fields each use words no other field uses. One draw of a few
    integers: generation, not checking, is what a property test of this size pays for."""
    category_i, visibility_i, expired, consent, ipc_m, isic_m, share_m, trl = draw(
        st.tuples(
            st.integers(0, 2),
            st.integers(0, 3),
            st.booleans(),
            st.booleans(),
            st.integers(1, 2 ** len(IPC) - 1),
            st.integers(1, 2 ** len(ISIC) - 1),
            st.integers(0, 2 ** (len(NODES) + 1) - 1),
            st.integers(1, 9),
        )
    )
    category = CATEGORIES[category_i]
    visibility = VISIBILITIES[visibility_i]
    record: dict[str, Any] = {
        "id": f"x-{category[:3]}-{trl:04d}",
        "owner": "?",
        "category": category,
        "version": 1,
        "created": NOW - 10,
        "updated": NOW - 5,
        "expires": NOW - 1 if expired and trl == 9 else NOW + 1_000_000,
        "visibility": visibility,
        "title": {"en": _text("title", 3), "vi": "tiêu đề " + _text("titlevi", 1)},
        "summary": _text("summary", 4),
        "keywords": [_text("keywords", 1), _text("keywordsb", 1)],
        "ipc": list(_subset(IPC, ipc_m))[:2],
        "isic": list(_subset(ISIC, isic_m))[:2],
        "contact": {"person": _text("person", 2), "email": "contactw0@example.org"},
        "rights": {
            "ip_owner": [_text("owner", 2)],
            "attribution": [_text("author", 2)],
            "name_logo_consent": consent,
        },
    }
    if visibility == "bilateral":
        record["share_with"] = list(_subset((*NODES, HUB), share_m))
    if category == "expert":
        record |= {
            "name": _text("name", 2),
            "affiliation": _text("affiliation", 2),
            "job_title": _text("jobtitle", 2),
            "fields": [_text("fieldsx", 1)],
        }
    else:
        record["organization"] = {"name": _text("orgname", 2), "type": "university"}
        record["trl" if category == "tech_offer" else "trl_min"] = trl
        if category == "tech_request":
            record["need"] = _text("need", 3)
        else:
            record["stage"] = "prototype"
    return record


_RULE = st.tuples(
    st.integers(0, len(AUDIENCES) - 1),
    st.integers(0, 2),
    st.integers(1, 7),
    _MASK,
    st.none() | st.tuples(_MASK, _MASK),
)


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    g1, g2 = draw(st.tuples(_MASK, _MASK))
    groups = {"g1": _subset(NODES, g1), "g2": _subset(NODES, g2)}
    rules = []
    for audience_i, category_i, visibility_m, fields_m, relay_m in draw(
        st.lists(_RULE, min_size=1, max_size=7)
    ):
        category = CATEGORIES[category_i]
        palette = FIELDS[category]
        fields = _subset(palette, fields_m) or palette[:1]
        relay = None
        if relay_m is not None:
            relay = Relay(_subset(TARGETS, relay_m[0]), _subset(palette, relay_m[1]))
        visibility = _subset(("public", "network", "bilateral"), visibility_m)
        rules.append(Rule(AUDIENCES[audience_i], category, visibility, fields, relay))
    return Policy(groups=groups, rules=tuple(rules))


def _words(value: Any) -> set[str]:
    if isinstance(value, str):
        return {t.casefold() for t in _WORD.findall(value)}
    if isinstance(value, dict):
        return set().union(set(), *(_words(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(set(), *(_words(v) for v in value))
    if isinstance(value, int) and not isinstance(value, bool):
        return {str(value)}
    return set()


def _code_ancestors(fields: dict[str, Any]) -> set[str]:
    out: set[str] = set()
    for symbol in fields.get("ipc") or []:
        head = symbol.split()[0].casefold()
        out |= {head[:1], head[:3], head[:4]}
    for code in fields.get("isic") or []:
        out.add(code[:2])
        out.add("abcdefghijklmnopqrstu"[isic_section_of_division(int(code[:2])) - 1])
    return out


def _matcher_output(record: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The worst a matcher could say: every word and code of the whole listing."""
    terms = sorted(_words({k: v for k, v in record.items() if k != "id"}))
    codes = [f"IPC {s.split()[0]}" for s in record["ipc"]]
    codes += [f"IPC {s[:3]} (class)" for s in record["ipc"]]
    codes += [f"ISIC {c[:2]}" for c in record["isic"]]
    codes += [
        f"ISIC section {'ABCDEFGHIJKLMNOPQRSTU'[isic_section_of_division(int(c[:2])) - 1]}"
        for c in record["isic"]
    ]
    return terms, codes


def _audience(node: str, policy: Policy, member: bool) -> Audience:
    return Audience(node, policy.groups_of(node), member)


def _check(
    compiled: CompiledPolicy, record: dict[str, Any], owner: str, members: frozenset[str]
) -> int:
    """Every recipient's notice about ``record`` owned by ``owner``; returns the cases."""
    policy = compiled.policy
    record = {**record, "owner": owner}
    hub = _audience(HUB, policy, True)
    public = Audience(STAR, frozenset(), member=False)
    terms, codes = _matcher_output(record)
    hub_view = evaluate(record, hub, compiled, NOW)
    summary = None
    if owner != HUB:
        if hub_view.view is None:
            return len(NODES)  # the hub never holds it: nothing to match, nothing to tell
        rule = policy.rules[hub_view.rule_index - 1] if hub_view.rule_index else None
        listing = reader_envelope(
            hub_view.view, record, reader=HUB, hub_id=HUB, compiled=compiled, now_ms=NOW
        )
        relay = rule.relay.to_dict() if rule is not None and rule.relay else None
        summary = {"listing": listing, "policy": {"version": 1, "relay": relay}}
    for node in NODES:
        recipient = _audience(node, policy, node in members)
        knowable = (
            own_knowable(record, recipient, hub, compiled, NOW)
            if summary is None
            else held_knowable(summary, recipient)
        )
        notice = match_notice(
            issuer=HUB,
            now_ms=NOW,
            reader=node,
            own_id="own-1",
            role="request",
            counterpart=(owner, record["id"]),
            kind="offer",
            where="China" if owner == HUB else "Vietnam",
            score=0.5,
            components={"relevance": 0.5},
            shared_terms=terms,
            shared_codes=codes,
            knowable=knowable,
        )
        # The oracle: what the recipient could obtain without the hub's help.
        sources = [
            d.view["fields"]
            for d in (
                evaluate(record, recipient, compiled, NOW),
                evaluate(record, public, compiled, NOW),
            )
            if d.view is not None
        ]
        hub_rule = policy.rules[hub_view.rule_index - 1] if hub_view.rule_index else None
        if hub_view.view is not None and hub_rule is not None:
            relayed = relay_view(hub_view.view["fields"], hub_rule.relay, recipient)
            if relayed is not None:
                sources.append(relayed)
        if notice is None:
            if owner == HUB:  # the hub knows its own policy: it tells whenever it may
                assert not sources, (node, policy, record)
            continue
        assert sources, f"{node} told of a listing it may not know: {policy} {record}"
        assert record["visibility"] != "private"
        known = (
            FIXED | {"own", "1"} | set().union(*(_words(s) | _code_ancestors(s) for s in sources))
        )
        said = _words(notice["counterpart"]["fields"]) | _words(notice["counterpart"])
        said |= _words(notice["explanation"]["shared_terms"])
        said |= _words(notice["explanation"]["shared_codes"])
        said -= _words(record["id"]) | {"offer", "cn", "vn"}  # named: id, kind, owner
        assert said <= known, (node, sorted(said - known), policy, record)
    return len(NODES)


def test_a_notice_carries_only_what_its_recipient_could_obtain() -> None:
    cases: list[int] = []

    @settings(
        max_examples=180,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(
        policy=policies(),
        records=st.lists(listings(), min_size=5, max_size=5),
        members=st.integers(0, 2 ** len(NODES) - 1),
    )
    def run(policy: Policy, records: list[dict[str, Any]], members: int) -> None:
        in_network = frozenset(_subset(NODES, members))
        compiled = compile_policy(policy)
        for record in records:
            cases.append(_check(compiled, record, HUB, in_network))
            cases.append(_check(compiled, record, MEMBER, in_network))

    run()
    assert sum(cases) >= CASES_WANTED, sum(cases)


def test_the_filter_keeps_only_words_and_codes_of_the_knowable_fields() -> None:
    """The simulated matcher output names hidden words and codes; the notice keeps the
    title's words only, since the public view (the only source) has nothing else."""
    policy = Policy(
        rules=(Rule(STAR, "tech_offer", ("public",), ("title",), None),),
    )
    offer: dict[str, Any] = {
        "id": "x-tec-0001",
        "owner": HUB,
        "category": "tech_offer",
        "version": 1,
        "created": NOW - 10,
        "updated": NOW - 5,
        "expires": NOW + 1000,
        "visibility": "public",
        "title": {"en": _text("title", 2)},
        "summary": _text("summary", 2),
        "ipc": ["A01B"],
        "isic": ["01"],
        "rights": {"ip_owner": ["x"], "attribution": [], "name_logo_consent": False},
    }
    compiled = compile_policy(policy)
    reader = Audience("aa", frozenset(), True)
    knowable = own_knowable(offer, reader, _audience(HUB, policy, True), compiled, NOW)
    terms, codes = _matcher_output(offer)
    notice = match_notice(
        issuer=HUB,
        now_ms=NOW,
        reader="aa",
        own_id="own-1",
        role="request",
        counterpart=(HUB, offer["id"]),
        kind="offer",
        where="China",
        score=0.5,
        components={},
        shared_terms=terms,
        shared_codes=codes,
        knowable=knowable,
    )
    assert notice is not None
    assert "summaryw0" in terms and "IPC A01B" in codes
    assert notice["explanation"]["shared_terms"] == sorted(_words(offer["title"]))
    assert notice["explanation"]["shared_codes"] == []


def _told(knowable: Knowable, role: str = "request", **extra: float) -> dict[str, Any]:
    components = {
        **extra,
        "text": 0.61,
        "semantic": 0.72,
        "ipc": 1.0,
        "sector": 1.0,
        "trl": 1.0,
        "partnership": 1.0,
    }
    notice = match_notice(
        issuer=HUB,
        now_ms=NOW,
        reader="aa",
        own_id="own-1",
        role=role,
        counterpart=("vn", "vn-off-1"),
        kind="offer",
        where="Vietnam",
        score=0.6789,
        components=components,
        shared_terms=[],
        shared_codes=[],
        knowable=knowable,
    )
    assert notice is not None
    return notice


def test_a_component_is_told_only_when_the_reader_may_know_what_it_reads() -> None:
    """A member's probing requests read a counterpart's hidden sector, partnership, IPC
    subclass and TRL from the notices' components. A component is told only when the
    reader may know every field of the counterpart it reads; when any is withheld, the
    score is told to one decimal."""
    title_only = Knowable(relayed={"title": {"en": "Solar dryer"}, "keywords": ["solar"]})
    notice = _told(title_only)
    assert notice["explanation"]["components"] == {}  # its summary is hidden: no text either
    assert notice["score"] == 0.7
    everything = {
        "title": {"en": "Solar dryer"},
        "keywords": ["solar"],
        "summary": "A dryer.",
        "ipc": ["F26B"],
        "sector": "agriculture",
        "trl": 7,
        "partnership": ["licensing"],
    }
    notice = _told(Knowable(views=(everything,)))
    told = notice["explanation"]["components"]
    assert set(told) == {"text", "semantic", "ipc", "sector", "trl", "partnership"}
    assert notice["score"] == 0.6789
    notice = _told(Knowable(views=(everything,)), relevance=0.3)  # a name nobody is told
    assert "relevance" not in notice["explanation"]["components"] and notice["score"] == 0.7
    # the counterpart is a request when the reader's listing is the candidate
    notice = _told(Knowable(views=({**everything, "trl": 7},)), role="candidate")
    assert "trl" not in notice["explanation"]["components"]  # a request's trl_min is hidden
    assert "text" not in notice["explanation"]["components"]  # so is its need
