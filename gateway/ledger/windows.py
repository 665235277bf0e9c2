"""Fixed windows: which window a moment falls in, and where that window ends.

The window key is stored next to each counter, so a period boundary needs no
reset job: the next reserve simply lands in a new, empty window. Keys sort in
time order within a period, which lets the SQL backend purge old windows with
a string comparison.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from gateway.ledger.base import MAX_TTL_S, Period

TOTAL_KEY = "total"
# How long a window's counters outlive its end: past any reservation made in it (so it can still
# settle), and for days and months a little history. Minute windows are many and soon useless.
KEEP_AFTER_END_S = {Period.MINUTE: 2 * MAX_TTL_S, Period.DAY: 2 * 86400.0, Period.MONTH: 2 * 86400.0}
_MINUTE_FORMAT = "%Y-%m-%dT%H:%M"


@dataclass(frozen=True, slots=True)
class Window:
    period: Period
    key: str
    start: datetime | None  # aware UTC; None for TOTAL
    end: datetime | None  # aware UTC, the next boundary; None for TOTAL


def window_for(period: Period, now: datetime, tz: tzinfo) -> Window:
    """The window of ``period`` that contains ``now`` (an aware datetime)."""
    if period is Period.TOTAL:
        return Window(period, TOTAL_KEY, None, None)
    if period is Period.MINUTE:
        # Minutes are keyed in UTC: every zone's offset is whole minutes, so the
        # boundaries are the same, and a DST fall-back cannot repeat a local key.
        start = now.astimezone(UTC).replace(second=0, microsecond=0)
        return Window(period, start.strftime(_MINUTE_FORMAT), start, start + timedelta(minutes=1))
    local = now.astimezone(tz).date()
    if period is Period.DAY:
        return _day(local, tz)
    return _month(local.year, local.month, tz)


def window_from_key(key: str, tz: tzinfo) -> Window:
    """Rebuild a window from its stored key (the inverse of :func:`window_for`)."""
    if key == TOTAL_KEY:
        return Window(Period.TOTAL, key, None, None)
    if "T" in key:
        start = datetime.strptime(key, _MINUTE_FORMAT).replace(tzinfo=UTC)
        return Window(Period.MINUTE, key, start, start + timedelta(minutes=1))
    if len(key) == len("2026-11-23"):
        return _day(date.fromisoformat(key), tz)
    year, month = key.split("-")
    return _month(int(year), int(month), tz)


def oldest_kept_keys(now: datetime, tz: tzinfo) -> dict[Period, str]:
    """Per period, the oldest window key still kept; windows that ended longer ago sort below it."""
    return {
        period: window_for(period, now - timedelta(seconds=keep), tz).key for period, keep in KEEP_AFTER_END_S.items()
    }


def keep_until(window: Window) -> datetime | None:
    """When a window's counters may go (None: never)."""
    return None if window.end is None else window.end + timedelta(seconds=KEEP_AFTER_END_S[window.period])


def _local_midnight(day: date, tz: tzinfo) -> datetime:
    return datetime.combine(day, time(), tzinfo=tz).astimezone(UTC)


def _day(day: date, tz: tzinfo) -> Window:
    return Window(Period.DAY, day.isoformat(), _local_midnight(day, tz), _local_midnight(day + timedelta(days=1), tz))


def _month(year: int, month: int, tz: tzinfo) -> Window:
    following = date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)
    return Window(
        Period.MONTH,
        f"{year:04d}-{month:02d}",
        _local_midnight(date(year, month, 1), tz),
        _local_midnight(following, tz),
    )
