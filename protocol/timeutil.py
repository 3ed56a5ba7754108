"""Protocol time: integer milliseconds since the epoch, UTC. Dates become 00:00 UTC."""

from __future__ import annotations

import datetime as dt

DAY_MS = 86_400_000


def date_to_ms(value: str) -> int:
    """``YYYY-MM-DD`` (or a full ISO 8601 time with offset) to integer ms, UTC."""
    if len(value) == 10:
        day = dt.date.fromisoformat(value)
        moment = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    else:
        moment = dt.datetime.fromisoformat(value)
        if moment.tzinfo is None:
            raise ValueError("a time needs a UTC offset")
    return int(moment.timestamp() * 1000)


def ms_to_iso(ms: int) -> str:
    """Integer ms to an ISO 8601 UTC string, for people."""
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).isoformat().replace("+00:00", "Z")


def ms_to_date(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).date().isoformat()
