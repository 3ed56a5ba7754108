"""The member form of the directory page: what the operator typed, read and checked field
by field, so each error is shown beside its field (message ids, translated in the page).

The directory service checks the member again before saving (``member_problem``): this
module only says early, and in plain words, what it would refuse.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from node.ui.i18n import N_
from protocol.countries import ISO_COUNTRIES

NODE_ID = re.compile(r"^[a-z][a-z0-9_]{1,31}\Z")
GROUP = re.compile(r"^[A-Za-z0-9_*-]{1,64}\Z")
BASE_URL = re.compile(r"^https?://[^\s/?#]+[^\s]{0,240}\Z")
MAX_GROUPS = 100
MAX_SHOWN_KEYS = 120

ERRORS = {
    "node_id": N_(
        "A node id is 2 to 32 characters: lower-case letters, digits or _, "
        "starting with a letter (for example: vn_hanoi)."
    ),
    "name": N_("Give the center's name (at most 200 characters)."),
    "country": N_("Give the country as its two-letter ISO code (for example: VN)."),
    "base_url": N_("The address must start with http:// or https:// and name a host."),
    "groups": N_("Groups are names of letters, digits, _ or -, separated by commas."),
}


@dataclass
class MemberForm:
    node_id: str = ""
    name: str = ""
    country: str = ""
    base_url: str = ""
    groups: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def groups_text(self) -> str:
        return ", ".join(self.groups)

    @property
    def ok(self) -> bool:
        return not self.errors


def _text(form: Any, name: str, limit: int = 400) -> str:
    value = form.get(name, "")
    return value.strip()[:limit] if isinstance(value, str) else ""


def parse_groups(text: str) -> list[str] | None:
    """``mou, asean`` -> ``["asean", "mou"]``; None if a name is not a group name."""
    names = sorted({g for g in re.split(r"[\s,]+", text) if g})
    if len(names) > MAX_GROUPS or not all(GROUP.match(g) for g in names):
        return None
    return names


def read_member_form(form: Any, *, with_id: bool = True) -> MemberForm:
    """The fields of ``form``; ``with_id=False`` for an update (the id is in the URL)."""
    out = MemberForm(
        node_id=_text(form, "node_id", 64),
        name=_text(form, "name", 400),
        country=_text(form, "country", 8).upper(),
        base_url=_text(form, "base_url", 400),
    )
    if with_id and not NODE_ID.match(out.node_id):
        out.errors["node_id"] = ERRORS["node_id"]
    if not out.name or len(out.name) > 200:
        out.errors["name"] = ERRORS["name"]
    if with_id and out.country not in ISO_COUNTRIES:
        out.errors["country"] = ERRORS["country"]
    if not BASE_URL.match(out.base_url):
        out.errors["base_url"] = ERRORS["base_url"]
    groups = parse_groups(_text(form, "groups", 8000))
    if groups is None:
        out.errors["groups"] = ERRORS["groups"]
    else:
        out.groups = groups
    return out


def shown_keys(text: str) -> dict[str, str] | None:
    """The keys a confirmation page showed (``{name: base64url key}``), or None."""
    try:
        value = json.loads(text) if 0 < len(text) <= 20_000 else None
    except ValueError:
        return None
    if not isinstance(value, dict) or not 0 < len(value) <= MAX_SHOWN_KEYS:
        return None
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        return None
    return value
