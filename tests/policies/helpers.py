"""Hand-made listings and small policies for the policy tests (validated, so realistic)."""

from __future__ import annotations

import copy
from typing import Any

from policies import Audience, Policy, Rule
from protocol.listing import listing_to_wire, parse_listing

DAY = 86_400_000
NOW = 1_800_000_000_000

BASE: dict[str, Any] = {
    "id": "vn-off-0100",
    "owner": "vn",
    "version": 2,
    "created": NOW - 100 * DAY,
    "updated": NOW - 10 * DAY,
    "expires": NOW + 365 * DAY,
    "title": {"en": "Rice husk gasifier", "vi": "Lo khi hoa trau"},
    "summary": "A downdraft gasifier that turns rice husk into producer gas for drying.",
    "keywords": ["rice husk", "gasification"],
    "ipc": ["C10J"],
    "isic": ["35"],
    "country": "VN",
    "contact": {
        "person": "Pham Van An",
        "email": "an@mekong-uni.example",
        "phone": "+84 28 1234 5678",
    },
    "rights": {
        "ip_owner": ["Mekong University of Technology"],
        "attribution": ["Pham Van An", "Le Thi Hoa"],
        "name_logo_consent": True,
    },
    "visibility": "public",
}

CATEGORY_EXTRA: dict[str, dict[str, Any]] = {
    "tech_offer": {
        "sector": "new_energy",
        "trl": 7,
        "stage": "demonstrated",
        "ipr_status": "granted",
        "partnership": ["licensing"],
        "target_countries": ["kh", "la"],
        "organization": {"name": "Mekong University of Technology", "type": "university"},
    },
    "tech_request": {
        "sector": "agrifood",
        "need": "A dryer for paddy that runs on husk.",
        "trl_min": 6,
        "partnership": ["licensing"],
        "organization": {"name": "Mekong University of Technology", "type": "university"},
    },
    "expert": {
        "name": "Pham Van An",
        "job_title": "Professor",
        "affiliation": "Mekong University of Technology",
        "fields": ["gasification"],
        "languages": ["vi", "en"],
        "sectors": ["new_energy"],
    },
    "organization": {
        "name": "Mekong University of Technology",
        "type": "university",
        "sectors": ["new_energy"],
        "website": "https://www.mekong-uni.example",
    },
    "event": {
        "name": "Biomass energy matchmaking",
        "kind": "matchmaking",
        "city": "Can Tho",
        "start": NOW + 30 * DAY,
        "end": NOW + 31 * DAY,
        "organizer": "vn",
        "organization": {"name": "Vietnam-China Technology Transfer Centre", "type": "government"},
        "registration_open": True,
    },
    "agreement": {
        "parties": [
            {"name": "Mekong University of Technology", "node": "vn"},
            {"name": "Anhui Biomass Co., Ltd.", "node": "cn"},
        ],
        "kind": "licensing",
        "signed": NOW - 20 * DAY,
        "ip_arrangement": "sole",
        "sector": "new_energy",
    },
}


def make(category: str = "tech_offer", **changes: Any) -> dict[str, Any]:
    """A valid wire listing of ``category``; ``changes`` replace top-level keys (None drops
    the key); ``consent=``, ``attribution=``, ``ip_owner=`` change the rights."""
    record = copy.deepcopy(BASE) | copy.deepcopy(CATEGORY_EXTRA[category])
    record["category"] = category
    for key in ("consent", "attribution", "ip_owner"):
        if key in changes:
            name = "name_logo_consent" if key == "consent" else key
            record["rights"][name] = changes.pop(key)
    for key, value in changes.items():
        if value is None:
            record.pop(key, None)
        else:
            record[key] = value
    return listing_to_wire(parse_listing(record))


def rule(
    audience: str,
    category: str,
    fields: tuple[str, ...] | list[str],
    *,
    visibility: tuple[str, ...] = ("public", "network", "bilateral"),
) -> Rule:
    return Rule(audience, category, tuple(visibility), tuple(fields))


def policy(*rules: Rule, groups: dict[str, tuple[str, ...]] | None = None) -> Policy:
    return Policy(groups=groups or {}, rules=rules)


def aud(node: str, *groups: str, member: bool = True) -> Audience:
    return Audience(node, frozenset(groups), member)
