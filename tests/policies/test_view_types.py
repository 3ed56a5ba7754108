"""Every view an owner builds has the listing's types (``protocol.view_schema``), which
is what every reader now holds a summary's fields to: a view with a name replaced by
words, a nested object cut to some of its fields, free text with names taken out."""

from __future__ import annotations

from typing import Any

import pytest

from policies import compile_policy
from policies.evaluate import evaluate
from protocol.listing import shareable_fields
from protocol.view_schema import check_view_fields

from .helpers import NOW, aud, policy, rule


@pytest.mark.parametrize("consent", [True, False])
def test_every_view_of_the_samples_has_the_listings_types(
    listings: list[dict[str, Any]], consent: bool
) -> None:
    checked = 0
    for record in listings:
        listing = {**record, "rights": {**record["rights"], "name_logo_consent": consent}}
        category = listing["category"]
        reader = (listing.get("share_with") or ["th"])[0]
        paths = shareable_fields(category)
        for fields in [paths, *((p,) for p in paths)]:
            compiled = compile_policy(policy(rule("*", category, fields)))
            view = evaluate(listing, aud(reader), compiled, NOW).view
            if view is None:  # private, or expired at NOW
                continue
            check_view_fields(category, view["fields"])
            checked += 1
    assert checked > 2_000


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"title": "Solar dryer"}, "fields.title"),
        ({"title": {"en": 3}}, "fields.title.en"),
        ({"trl": "7"}, "fields.trl"),
        ({"trl": True}, "fields.trl"),
        ({"keywords": "solar"}, "fields.keywords"),
        ({"organization": "A university"}, "fields.organization"),
        ({"organization": {"type": "university", "rank": 1}}, "fields.organization.rank"),
        ({"boost": 1}, "fields.boost"),
        ({"id": "th-off-9"}, "fields.id"),  # an envelope field is not a view field
        # a listing's own bounds on lists; four times its bound on a string
        ({"ipc": ["C08L"] * 21}, "fields.ipc"),
        ({"title": {f"l{i}": "x" for i in range(13)}}, "fields.title"),
        ({"summary": "word " * 1601}, "fields.summary"),
    ],
)
def test_a_field_of_another_type_is_named(fields: dict[str, Any], where: str) -> None:
    with pytest.raises(ValueError, match=f"^{where}: "):
        check_view_fields("tech_offer", fields)
