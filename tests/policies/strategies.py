"""Hypothesis strategies: random wire listings, policies and audiences for property tests.

Each structure is built from a handful of integer draws sliced into bit fields, which
keeps generation cheap (a few ms per case), so that tens of thousands of cases fit in
the test run. Failing cases are still reported and replayed exactly.

Names and contact details carry distinct markers (``Orgname``, ``Coowner``, ``Party``,
``Contactperson``...) with one fixed-length suffix, so a test can search a view for them
without one name being a substring of another. Expert names carry accents, and free text
sometimes repeats a name with or without them, to exercise redaction.
"""

from __future__ import annotations

import random
import string
from typing import Any

from hypothesis import strategies as st

from policies import Audience, Policy, Relay, Rule
from protocol.listing import CATEGORIES, shareable_fields

NOW = 1_800_000_000_000
DAY = 86_400_000
NODE_POOL = ("cn", "th", "vn", "my", "ph", "sg", "xx")
GROUP_POOL = ("mou", "no_mou", "asean")
AUDIENCE_POOL = (*NODE_POOL, *GROUP_POOL, "*")
COUNTRIES = ("VN", "TH", "CN", "MY", "PH", "FR")
ORG_TYPES = ("university", "research_institute", "enterprise", "government", "cooperative")
VISIBILITIES = ("public", "network", "bilateral", "private")
FIELDS = {category: shareable_fields(category) for category in CATEGORIES}

words = st.integers(0, 2**64 - 1)


class Bits:
    """Reads small numbers off one drawn integer.

    Hypothesis favours small integers; the value seeds a ``random.Random`` that supplies
    1024 evenly spread bits, so every bit field sees all its values (deterministically).
    """

    def __init__(self, value: int) -> None:
        self.value = random.Random(value).getrandbits(1024)

    def take(self, n: int) -> int:
        """A number in [0, n)."""
        out = self.value % n
        self.value //= n
        return out

    def flag(self) -> bool:
        return self.take(2) == 1

    def subset(self, items: tuple[str, ...] | list[str], minimum: int = 0) -> list[str]:
        chosen = [item for item in items if self.flag()]
        return chosen if len(chosen) >= minimum else list(items[:minimum])


def _extra_fields(
    category: str,
    s: str,
    org: dict[str, str],
    person: str,
    parties: list[dict[str, str]],
    bits: Bits,
) -> dict[str, Any]:
    return {
        "sector": "agrifood",
        "trl": 1 + bits.take(9),
        "stage": "on_market",
        "ipr_status": "granted",
        "partnership": ["licensing"],
        "target_countries": ["th"],
        "organization": org,
        "need": f"Need {s}",
        "trl_min": 3,
        "budget_range": "under 50k USD" if bits.flag() else None,
        "deadline": NOW + 30 * DAY,
        "name": person
        if category == "expert"
        else (f"Event {s}" if category == "event" else org["name"]),
        "job_title": "Professor",
        "affiliation": f"Affil {org['name']}",
        "fields": ["soil"],
        "languages": ["en"],
        "sectors": ["agrifood"],
        "type": org["type"],
        "member_since": NOW - 900 * DAY,
        "website": "https://www.example.example",
        "kind": "licensing",
        "city": "Hue",
        "start": NOW,
        "end": NOW + DAY,
        "organizer": "vn",
        "registration_open": True,
        "capacity": 40,
        "parties": parties,
        "signed": NOW - DAY,
        "related_listings": ["a-1"],
        "ip_arrangement": "sole",
        "value_usd": 1000 if bits.flag() else None,
    }


def _expires(r: int) -> int:
    """Mostly in the future; sometimes just past, exactly now (expired) or 1 ms ahead."""
    return {0: NOW - DAY, 1: NOW, 2: NOW + 1}.get(r, NOW + r * DAY)


def _visibility(r: int) -> str:
    """private 1/8, bilateral 2/8, network 2/8, public 3/8."""
    return ("private", "bilateral", "bilateral", "network", "network")[r] if r < 5 else "public"


@st.composite
def listings(draw: st.DrawFn) -> dict[str, Any]:
    """A wire listing of any category, with every optional part sometimes missing."""
    bits = Bits(draw(words))
    category = CATEGORIES[bits.take(len(CATEGORIES))]
    s = "".join(string.ascii_lowercase[bits.take(26)] for _ in range(6)).capitalize()
    visibility = _visibility(bits.take(8))
    omit = Bits(bits.take(2**64))
    org = {"name": f"Orgname {s}", "type": ORG_TYPES[bits.take(len(ORG_TYPES))]}
    person = f"Trần Thị {s}"
    coowners = [f"Coowner{i} {s}" for i in range(bits.take(3))]
    parties = [
        {"name": f"Party{i} {s}", "node": NODE_POOL[bits.take(len(NODE_POOL))]}
        for i in range(1 + bits.take(3))
    ]
    mentions = [org["name"], person, f"Tran Thi {s}", *coowners, *(p["name"] for p in parties)]
    title = {"en": f"Title {s}"}
    if bits.flag():
        title["en"] = f"{mentions[bits.take(len(mentions))]} - {title['en']}"
    if bits.flag():
        lang = ("vi", "th", "zh")[bits.take(3)]
        title[lang] = f"{mentions[bits.take(len(mentions))]} tiêu đề"
    summary = f"Summary {s}" + (
        f" by {mentions[bits.take(len(mentions))]}." if bits.flag() else "."
    )
    owners = {"agreement": [p["name"] for p in parties], "expert": [f"Affil {org['name']}"]}
    authors: Any = [f"Author{i} {s}" for i in range(bits.take(3))]
    if category == "expert" and bits.flag():
        authors = [person, *authors]
    if bits.take(5) == 0:
        authors = "declined"
    listing: dict[str, Any] = {
        "id": f"zz-x-{s.lower()}",
        "owner": "zz",
        "category": category,
        "version": 1 + bits.take(9),
        "created": NOW - 400 * DAY,
        "updated": NOW - bits.take(300) * DAY,
        "expires": _expires(bits.take(16)),
        "title": title,
        "summary": summary,
        "keywords": [f"kw{i}" for i in range(bits.take(4))],
        "ipc": ["A01G"],
        "isic": ["01"],
        "country": COUNTRIES[bits.take(len(COUNTRIES))],
        "rights": {
            "ip_owner": owners.get(category, [org["name"]]) + coowners,
            "attribution": authors,
            "name_logo_consent": bits.flag(),
        },
        "visibility": visibility,
    }
    if bits.flag():
        contact = {
            "person": f"Contactperson {s}",
            "email": f"{s.lower()}@mail.example",
            "phone": f"+99 {1000 + bits.take(9000)}",
        }
        listing["contact"] = {k: v for k, v in contact.items() if bits.flag()}
    if visibility == "bilateral":
        listing["share_with"] = Bits(bits.take(2**64)).subset(NODE_POOL, minimum=1)
    extra = _extra_fields(category, s, org, person, parties, bits)
    for path in FIELDS[category]:
        key = path.partition(".")[0]
        if "." in path or key in listing or key == "contact" or extra[key] is None:
            continue
        if omit.take(4) != 0:
            listing[key] = extra[key]
    return listing


def rule_from(bits: Bits, audience: str, category: str, *, valid: bool) -> Rule:
    fields = bits.subset(FIELDS[category], minimum=1)
    pool = VISIBILITIES[:3] if valid else VISIBILITIES
    visibility = bits.subset(pool, minimum=1)
    relay = None
    if bits.flag():
        relay = Relay(
            tuple(bits.subset(AUDIENCE_POOL, minimum=1)), tuple(bits.subset(fields, minimum=1))
        )
    return Rule(audience, category, tuple(visibility), tuple(fields), relay)


@st.composite
def policies(draw: st.DrawFn, *, valid: bool = False) -> Policy:
    """A policy; ``valid`` ones pass ``parse_policy`` (no 'private' in rules)."""
    group_bits = Bits(draw(words))
    groups = {name: tuple(group_bits.subset(NODE_POOL)) for name in GROUP_POOL if group_bits.flag()}
    made: dict[tuple[str, str], Rule] = {}
    for _ in range(group_bits.take(9)):
        bits = Bits(group_bits.take(2**64))
        audience = AUDIENCE_POOL[bits.take(len(AUDIENCE_POOL))]
        category = CATEGORIES[bits.take(len(CATEGORIES))]
        made.setdefault((audience, category), rule_from(bits, audience, category, valid=valid))
    return Policy(groups, tuple(made.values()))


def audience_from(bits: Bits, policy: Policy) -> Audience:
    node = NODE_POOL[bits.take(len(NODE_POOL))]
    extra = frozenset(bits.subset(GROUP_POOL))
    return Audience(node, policy.groups_of(node) | extra, member=bits.take(4) != 0)


@st.composite
def audiences(draw: st.DrawFn, policy: Policy) -> Audience:
    return audience_from(Bits(draw(words)), policy)


@st.composite
def cases(draw: st.DrawFn) -> tuple[dict[str, Any], Policy, Audience]:
    """(listing, policy, audience); the policy usually has a rule for the listing."""
    listing = draw(listings())
    policy = draw(policies())
    audience = draw(audiences(policy))
    bits = Bits(draw(words))
    if bits.take(4) > 0:
        keys = (audience.node_id, *sorted(audience.groups), "*")
        key = keys[bits.take(len(keys))]
        extra = rule_from(bits, key, listing["category"], valid=False)
        kept = tuple(r for r in policy.rules if (r.audience, r.category) != (key, extra.category))
        policy = Policy(policy.groups, (*kept, extra))
    return listing, policy, audience
