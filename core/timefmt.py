"""Timestamps on the wire: aware UTC, ISO 8601 with a ``Z``.

SQLite hands back naive datetimes for ``DateTime(timezone=True)`` columns;
every stored time is UTC, so a naive one is read as UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime


def aware(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def utc_iso(value: datetime | None) -> str | None:
    stamp = aware(value)
    return None if stamp is None else stamp.isoformat().replace("+00:00", "Z")
