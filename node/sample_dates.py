"""The sample listings' dates, moved to today for the demo and the tests.

The sample data of ../shared/data was frozen on 2026-11-28, "today" for that data, and
its dates are real calendar dates. Read as they are, the listings that expire in
December 2026 would drop out of the demo and of every test built on them, one by one.
``shift_record`` moves each date field by the whole days since that reference date, so
a listing keeps its age and the time it has left, and a listing that had already
expired on the reference date is still expired.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

REFERENCE = dt.date(2026, 11, 28)
"""The sample data's "today" (its README: nothing is created or updated after it)."""

DATE_FIELDS = (
    "created",
    "updated",
    "expires",
    "deadline",
    "member_since",
    "start",
    "end",
    "signed",
)
"""The record fields that hold a calendar date (``YYYY-MM-DD``), by the data's README."""


def days_since_reference(today: dt.date | None = None) -> int:
    """Whole days from the reference date to ``today`` (UTC), never negative."""
    day = today if today is not None else dt.datetime.now(dt.UTC).date()
    return max(0, (day - REFERENCE).days)


def shift_record(record: Mapping[str, Any], days: int) -> dict[str, Any]:
    """A copy of ``record`` with each date field ``days`` later; other values untouched.

    A field that is not a ``YYYY-MM-DD`` string is left as it is: the importer reports it.
    """
    out = dict(record)
    if days == 0:
        return out
    for name in DATE_FIELDS:
        value = out.get(name)
        if isinstance(value, str) and len(value) == 10:
            try:
                day = dt.date.fromisoformat(value)
            except ValueError:
                continue
            out[name] = (day + dt.timedelta(days=days)).isoformat()
    return out
