"""The sample's dates moved to today (node.sample_dates): ages and remaining lives kept."""

from __future__ import annotations

import datetime as dt

from node.sample_dates import DATE_FIELDS, REFERENCE, days_since_reference, shift_record
from tests.node.sample import sample_record, sample_records


def test_days_since_the_reference_date_never_go_negative() -> None:
    assert days_since_reference(REFERENCE) == 0
    assert days_since_reference(REFERENCE + dt.timedelta(days=40)) == 40
    assert days_since_reference(REFERENCE - dt.timedelta(days=3)) == 0


def test_every_date_field_moves_by_the_same_days_and_nothing_else_changes() -> None:
    record = {
        "id": "x",
        "created": "2026-01-02",
        "updated": "2026-11-28",
        "expires": "2026-12-06",
        "deadline": "2026-12-31",
        "start": "2027-02-28",
        "title": {"en": "2026-01-01"},
        "summary": "2026-01-01",
    }
    moved = shift_record(record, 10)
    assert moved["created"] == "2026-01-12"
    assert moved["updated"] == "2026-12-08"
    assert moved["expires"] == "2026-12-16"
    assert moved["deadline"] == "2027-01-10"
    assert moved["start"] == "2027-03-10"
    assert moved["title"] == {"en": "2026-01-01"} and moved["summary"] == "2026-01-01"
    assert record["expires"] == "2026-12-06", "the input is not changed"


def test_a_field_that_is_not_a_date_is_left_for_the_importer_to_report() -> None:
    moved = shift_record({"expires": "soon", "created": 20260101, "updated": "2026-13-01"}, 5)
    assert moved == {"expires": "soon", "created": 20260101, "updated": "2026-13-01"}


def test_the_tests_sample_keeps_each_listing_live_or_expired_as_on_the_reference_date() -> None:
    today = dt.datetime.now(dt.UTC).date()
    records = sample_records()
    expired = {r["id"] for r in records if dt.date.fromisoformat(r["expires"]) < today}
    # The data's README: exactly these 12 had expired on 2026-11-28; no other expires
    # before 2026-12-01, so three days of slack.
    assert expired == {
        "cn-off-0011",
        "cn-off-0012",
        "cn-off-0020",
        "cn-off-0025",
        "vn-off-0003",
        "cn-req-0001",
        "id-req-0003",
        "mm-req-0004",
        "ph-req-0002",
        "th-req-0004",
        "vn-req-0003",
        "la-evt-0001",
    }
    assert max(r["updated"] for r in records) <= today.isoformat()
    assert dt.date.fromisoformat(sample_record("cn-off-0001")["expires"]) > today
    assert set(DATE_FIELDS) >= {"created", "updated", "expires"}
