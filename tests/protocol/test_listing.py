"""Listing wire models: the 260 sample records parse, and each rule refuses what it should.

Every refusal must be a ``pydantic.ValidationError`` that names the field, so that an
``invalid_listing`` response can tell the operator what to fix. Cross-field rules (TRL
against stage, ``share_with`` against visibility) are model-level checks: pydantic reports
them at the model's location, so for those the message has to name the field instead.
"""

from __future__ import annotations

import collections
import json
from collections.abc import Iterator
from typing import Any

import pydantic
import pytest

from protocol.listing import (
    CATEGORIES,
    ENVELOPE_FIELDS,
    MODEL_BY_CATEGORY,
    ListingBase,
    listing_to_wire,
    normalize_record,
    parse_listing,
    shareable_fields,
)
from tests.paths import DATA, require

EXPECTED_COUNTS = {
    "tech_offer": 110,
    "tech_request": 90,
    "expert": 25,
    "organization": 20,
    "event": 10,
    "agreement": 5,
}
DAY_2024_01_11_MS = 1_704_931_200_000


def _records() -> Iterator[dict[str, Any]]:
    text = require(DATA / "listings.jsonl").read_text(encoding="utf-8")
    for line in text.splitlines():
        if line.strip():
            yield json.loads(line)


@pytest.fixture(scope="module")
def records() -> list[dict[str, Any]]:
    return list(_records())


@pytest.fixture(scope="module")
def by_category(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The first sample record of each category, dates already normalised."""
    out: dict[str, dict[str, Any]] = {}
    for record in records:
        out.setdefault(record["category"], normalize_record(record))
    return out


@pytest.fixture
def offer(by_category: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A valid tech offer (cn-off-0001, visibility network) to break one rule at a time."""
    record = json.loads(json.dumps(by_category["tech_offer"]))
    assert record["id"] == "cn-off-0001" and record["visibility"] == "network"
    return record  # type: ignore[no-any-return]


def _errors(record: dict[str, Any]) -> list[tuple[tuple[str | int, ...], str, str]]:
    with pytest.raises(pydantic.ValidationError) as info:
        parse_listing(record)
    return [(tuple(e["loc"]), e["type"], e["msg"]) for e in info.value.errors()]


def _locs(record: dict[str, Any]) -> set[tuple[str | int, ...]]:
    return {loc for loc, _, _ in _errors(record)}


# the sample data


def test_all_260_sample_records_parse(records: list[dict[str, Any]]) -> None:
    counts: collections.Counter[str] = collections.Counter()
    ids: set[tuple[str, str]] = set()
    for record in records:
        listing = parse_listing(normalize_record(record))
        assert isinstance(listing, MODEL_BY_CATEGORY[record["category"]])
        assert listing.id == record["id"]
        counts[listing.category] += 1
        ids.add((listing.owner, listing.id))
    assert len(records) == 260
    assert len(ids) == 260
    assert dict(counts) == EXPECTED_COUNTS


def test_sample_records_roundtrip_through_the_wire_form(records: list[dict[str, Any]]) -> None:
    for record in records:
        listing = parse_listing(normalize_record(record))
        wire = listing_to_wire(listing)
        assert json.loads(json.dumps(wire)) == wire
        assert parse_listing(wire) == listing


def test_sample_records_need_normalising(records: list[dict[str, Any]]) -> None:
    # the sample's dates are strings; the wire wants integer milliseconds
    with pytest.raises(pydantic.ValidationError):
        parse_listing(records[0])


def test_normalize_record_converts_dates_only() -> None:
    record = {"created": "2024-01-11", "updated": 5, "expires": "soon", "title": "2024-01-11"}
    out = normalize_record(record)
    assert out == {
        "created": DAY_2024_01_11_MS,
        "updated": 5,
        "expires": "soon",
        "title": "2024-01-11",
    }
    assert record["created"] == "2024-01-11"  # the input is not modified


# one rule at a time, on a valid offer


def test_the_base_offer_is_valid(offer: dict[str, Any]) -> None:
    assert parse_listing(offer).category == "tech_offer"


@pytest.mark.parametrize(
    "change",
    [
        {"summary": "a\x00b"},
        {"title": {"en": "Rice \x00dryer"}},
        {"keywords": ["ok", "\x00"]},
        {"organization": {"name": "A\x00", "type": "university"}},
    ],
)
def test_no_text_holds_nul_whatever_brought_it(
    offer: dict[str, Any], change: dict[str, Any]
) -> None:
    """PostgreSQL's text cannot hold NUL; a CSV cell or a form can carry one."""
    with pytest.raises(pydantic.ValidationError, match="NUL"):
        parse_listing({**offer, **change})


def test_missing_english_title(offer: dict[str, Any]) -> None:
    offer["title"] = {"zh": offer["title"]["zh"]}
    [(loc, _, msg)] = _errors(offer)
    assert loc == ("tech_offer", "title")
    assert "English" in msg


def test_title_length(offer: dict[str, Any]) -> None:
    offer["title"] = {"en": "x" * 300}
    parse_listing(offer)
    offer["title"] = {"en": "x" * 301}
    assert _locs(offer) == {("tech_offer", "title", "en")}
    offer["title"] = {"en": "ok", "th": "x" * 301}
    assert _locs(offer) == {("tech_offer", "title", "th")}


def test_summary_length(offer: dict[str, Any]) -> None:
    offer["summary"] = "x" * 2000
    parse_listing(offer)
    offer["summary"] = "x" * 2001
    assert _locs(offer) == {("tech_offer", "summary")}


@pytest.mark.parametrize("trl", [0, 10, -1])
def test_trl_out_of_range(offer: dict[str, Any], trl: int) -> None:
    offer["trl"] = trl
    assert _locs(offer) == {("tech_offer", "trl")}


@pytest.mark.parametrize(
    ("stage", "trl", "fits"),
    [
        ("concept", 1, True),
        ("concept", 3, True),
        ("concept", 4, False),
        ("under_development", 1, False),
        ("lab_tested", 6, True),
        ("demonstrated", 4, False),
        ("on_market", 8, True),
        ("on_market", 7, False),
    ],
)
def test_trl_must_fit_stage(offer: dict[str, Any], stage: str, trl: int, fits: bool) -> None:
    offer["stage"] = stage
    offer["trl"] = trl
    if fits:
        parse_listing(offer)
        return
    [(loc, _, msg)] = _errors(offer)
    assert loc == ("tech_offer",)
    assert f"trl {trl}" in msg and f"stage {stage}" in msg


@pytest.mark.parametrize(
    ("member", "value", "loc"),
    [
        ("stage", "prototype", ("tech_offer", "stage")),
        ("ipr_status", "pending", ("tech_offer", "ipr_status")),
        ("partnership", ["barter"], ("tech_offer", "partnership", 0)),
        ("sector", "tourism", ("tech_offer", "sector")),
        ("visibility", "secret", ("tech_offer", "visibility")),
    ],
)
def test_unknown_enum_value(
    offer: dict[str, Any], member: str, value: object, loc: tuple[str | int, ...]
) -> None:
    offer[member] = value
    [(got, kind, _)] = _errors(offer)
    assert got == loc
    assert kind == "literal_error"


def test_partnership_rules(offer: dict[str, Any]) -> None:
    offer["partnership"] = []
    assert _locs(offer) == {("tech_offer", "partnership")}
    offer["partnership"] = ["licensing", "licensing"]
    assert _locs(offer) == {("tech_offer", "partnership")}


@pytest.mark.parametrize("country", ["XX", "vn", "VNM", "", "V"])
def test_bad_country_code(offer: dict[str, Any], country: str) -> None:
    offer["country"] = country
    assert _locs(offer) == {("tech_offer", "country")}


@pytest.mark.parametrize("code", ["a01g", "A1G", "Z01G", "A01g", "A01GG", "A01G 9/"])
def test_bad_ipc_code(offer: dict[str, Any], code: str) -> None:
    offer["ipc"] = ["A01D", code]
    assert _locs(offer) == {("tech_offer", "ipc", 1)}


@pytest.mark.parametrize("code", ["A", "A01", "A01G", "A01G 9/14", "A01G9/14", "H01L 31/042"])
def test_good_ipc_code(offer: dict[str, Any], code: str) -> None:
    offer["ipc"] = [code]
    parse_listing(offer)


@pytest.mark.parametrize("code", ["1", "12345", "a", "V", "01 "])
def test_bad_isic_code(offer: dict[str, Any], code: str) -> None:
    offer["isic"] = [code]
    assert _locs(offer) == {("tech_offer", "isic", 0)}


def test_bilateral_needs_share_with(offer: dict[str, Any]) -> None:
    offer["visibility"] = "bilateral"
    [(loc, _, msg)] = _errors(offer)
    assert loc == ("tech_offer",)
    assert "share_with is required" in msg
    offer["share_with"] = []
    assert ("tech_offer", "share_with") in _locs(offer)
    offer["share_with"] = ["th", "vn"]
    assert parse_listing(offer).share_with == ["th", "vn"]


@pytest.mark.parametrize("visibility", ["public", "network", "private"])
def test_share_with_only_when_bilateral(offer: dict[str, Any], visibility: str) -> None:
    offer["visibility"] = visibility
    offer["share_with"] = ["th"]
    [(loc, _, msg)] = _errors(offer)
    assert loc == ("tech_offer",)
    assert "share_with is only allowed" in msg


def test_share_with_must_not_name_the_owner(offer: dict[str, Any]) -> None:
    offer["visibility"] = "bilateral"
    offer["share_with"] = ["th", "cn"]
    [(loc, _, msg)] = _errors(offer)
    assert loc == ("tech_offer",)
    assert "share_with must not name the owner" in msg


def test_share_with_entries_are_node_ids(offer: dict[str, Any]) -> None:
    offer["visibility"] = "bilateral"
    offer["share_with"] = ["th", "TH"]
    assert _locs(offer) == {("tech_offer", "share_with", 1)}


@pytest.mark.parametrize(
    ("path", "member"),
    [((), "internal_note"), (("organization",), "size"), (("rights",), "licence")],
)
def test_unknown_field_refused(offer: dict[str, Any], path: tuple[str, ...], member: str) -> None:
    target = offer
    for part in path:
        target = target[part]
    target[member] = "x"
    [(loc, kind, _)] = _errors(offer)
    assert loc == ("tech_offer", *path, member)
    assert kind == "extra_forbidden"


@pytest.mark.parametrize("value", ["2024-13-01", "2024-01-11T00:00:00", "1704931200000", "x"])
def test_string_times_refused_when_normalising_fails(offer: dict[str, Any], value: str) -> None:
    raw = {**offer, "created": value}
    normalised = normalize_record(raw)
    assert normalised["created"] == value  # left for validation to judge
    [(loc, kind, _)] = _errors(normalised)
    assert loc == ("tech_offer", "created")
    assert kind == "int_type"


def test_string_times_refused_in_every_date_field(by_category: dict[str, dict[str, Any]]) -> None:
    cases = [
        ("tech_request", "deadline"),
        ("event", "start"),
        ("event", "end"),
        ("agreement", "signed"),
        ("expert", "expires"),
    ]
    for category, member in cases:
        record = {**by_category[category], member: "31/12/2027"}
        assert _locs(normalize_record(record)) == {(category, member)}, member


def test_strict_types(offer: dict[str, Any]) -> None:
    offer["trl"] = "9"
    assert _locs(offer) == {("tech_offer", "trl")}
    offer["trl"] = 9
    offer["rights"] = {**offer["rights"], "name_logo_consent": "yes"}
    assert _locs(offer) == {("tech_offer", "rights", "name_logo_consent")}


def test_unknown_category(offer: dict[str, Any]) -> None:
    offer["category"] = "patent"
    [(loc, kind, _)] = _errors(offer)
    assert loc == ()
    assert kind == "union_tag_invalid"


def test_updated_before_created(offer: dict[str, Any]) -> None:
    offer["updated"] = offer["created"] - 1
    [(_, _, msg)] = _errors(offer)
    assert "updated is before created" in msg


def test_models_are_frozen(offer: dict[str, Any]) -> None:
    listing = parse_listing(offer)
    with pytest.raises(pydantic.ValidationError) as info:
        listing.trl = 1  # type: ignore[misc, union-attr]
    assert info.value.errors()[0]["type"] == "frozen_instance"
    assert isinstance(listing, ListingBase)
    with pytest.raises(pydantic.ValidationError):
        listing.rights.name_logo_consent = False  # type: ignore[misc]
    assert listing.trl == offer["trl"]  # type: ignore[union-attr]


# shareable fields


def test_shareable_fields_of_an_offer() -> None:
    fields = shareable_fields("tech_offer")
    for name in ("title", "summary", "trl", "organization", "organization.type", "contact.email"):
        assert name in fields
    assert not set(fields) & ENVELOPE_FIELDS
    assert "rights" not in fields
    assert len(fields) == len(set(fields))


def test_shareable_fields_of_every_category() -> None:
    assert set(MODEL_BY_CATEGORY) == set(CATEGORIES)
    for category in CATEGORIES:
        fields = shareable_fields(category)
        assert "title" in fields and "expires" in fields
        assert not set(fields) & ENVELOPE_FIELDS
    assert "parties.name" in shareable_fields("agreement")
    assert "need" in shareable_fields("tech_request")
    assert "trl" not in shareable_fields("expert")
    with pytest.raises(KeyError):
        shareable_fields("patent")
