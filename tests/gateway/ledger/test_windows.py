"""Windows roll over at their boundary (in UTC and in a local timezone); reservations expire."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from gateway.ledger import Charge, LedgerRefused, Period
from tests.fakes.clock import FakeClock

from .conftest import Backend

Name = Callable[[str], str]


@pytest.mark.parametrize(
    ("period", "tz", "boundary", "old_key", "new_key"),
    [
        (Period.MINUTE, "UTC", datetime(2026, 11, 23, 10, 42, tzinfo=UTC), "2026-11-23T10:41", "2026-11-23T10:42"),
        # minutes are keyed in UTC whatever the timezone
        (
            Period.MINUTE,
            "Asia/Shanghai",
            datetime(2026, 11, 23, 10, 42, tzinfo=UTC),
            "2026-11-23T10:41",
            "2026-11-23T10:42",
        ),
        (Period.DAY, "UTC", datetime(2026, 11, 24, tzinfo=UTC), "2026-11-23", "2026-11-24"),
        (Period.DAY, "Asia/Shanghai", datetime(2026, 11, 23, 16, tzinfo=UTC), "2026-11-23", "2026-11-24"),
        # the 25-hour day when New York leaves daylight saving time
        (Period.DAY, "America/New_York", datetime(2026, 11, 2, 5, tzinfo=UTC), "2026-11-01", "2026-11-02"),
        (Period.MONTH, "UTC", datetime(2026, 12, 1, tzinfo=UTC), "2026-11", "2026-12"),
        (Period.MONTH, "Asia/Shanghai", datetime(2026, 11, 30, 16, tzinfo=UTC), "2026-11", "2026-12"),
        (Period.MONTH, "Asia/Shanghai", datetime(2026, 12, 31, 16, tzinfo=UTC), "2026-12", "2027-01"),
    ],
)
async def test_window_rolls_over_at_the_boundary(
    backend: Backend,
    name: Name,
    period: Period,
    tz: str,
    boundary: datetime,
    old_key: str,
    new_key: str,
) -> None:
    clock = FakeClock(boundary - timedelta(seconds=0.5))
    ledger = backend.make(clock, tz)
    counter = name(f"{period}:{tz}")
    settled = await ledger.reserve([Charge(counter, 10, period, 4)])
    await ledger.settle(settled, {counter: 4})
    pending = await ledger.reserve([Charge(counter, 10, period, 6)])
    assert pending.items == ((counter, old_key, 6),)
    with pytest.raises(LedgerRefused) as info:
        await ledger.reserve([Charge(counter, 10, period, 1)])
    assert info.value.resets_at == boundary

    clock.advance(0.5)  # exactly on the boundary: the new window is empty
    fresh = await ledger.reserve([Charge(counter, 10, period, 10)])
    assert fresh.items == ((counter, new_key, 10),)
    snap = (await ledger.snapshot([(counter, period, 10)]))[counter]
    assert (snap.used, snap.reserved, snap.window_start) == (0, 10, boundary)

    # A reservation from before the boundary settles into its own (old) window.
    old = (await ledger.settle(pending, {counter: 5}))[counter]
    assert (old.used, old.reserved, old.resets_at) == (9, 0, boundary)
    assert old.window_start is not None and old.window_start < boundary
    snap = (await ledger.snapshot([(counter, period, 10)]))[counter]
    assert (snap.used, snap.reserved) == (0, 10)


async def test_total_never_resets(backend: Backend, clock: FakeClock, name: Name) -> None:
    ledger = backend.make(clock, "Asia/Shanghai")
    counter = name("lifetime")
    reservation = await ledger.reserve([Charge(counter, 3, Period.TOTAL, 3)])
    assert reservation.items == ((counter, "total", 3),)
    await ledger.settle(reservation, {counter: 3})
    clock.advance(400 * 86400)
    with pytest.raises(LedgerRefused) as info:
        await ledger.reserve([Charge(counter, 3, Period.TOTAL, 0)])
    assert info.value.resets_at is None and info.value.used == 3


async def test_unsettled_reservation_expires_after_its_ttl(backend: Backend, clock: FakeClock, name: Name) -> None:
    ledger = backend.make(clock)
    counter = name("usd")
    crashed = await ledger.reserve([Charge(counter, 10, Period.DAY, 5)], ttl_s=1)
    with pytest.raises(LedgerRefused):
        await ledger.reserve([Charge(counter, 10, Period.DAY, 6)])

    clock.advance(0.99)
    snap = (await ledger.snapshot([(counter, Period.DAY, 10)]))[counter]
    assert snap.reserved == 5
    clock.advance(0.02)
    snap = (await ledger.snapshot([(counter, Period.DAY, 10)]))[counter]
    assert snap.reserved == 0  # a snapshot already leaves it out

    live = await ledger.reserve([Charge(counter, 10, Period.DAY, 6)])
    snap = (await ledger.snapshot([(counter, Period.DAY, 10)]))[counter]
    assert (snap.used, snap.reserved) == (0, 6)

    # Settling after expiry changes nothing: the amount went back already.
    late = (await ledger.settle(crashed, {counter: 5}))[counter]
    assert (late.used, late.reserved) == (0, 6)
    await ledger.settle(live, {counter: 2})
    snap = (await ledger.snapshot([(counter, Period.DAY, 10)]))[counter]
    assert (snap.used, snap.reserved) == (2, 0)


async def test_expiry_applies_to_every_counter_of_a_reservation(backend: Backend, clock: FakeClock, name: Name) -> None:
    ledger = backend.make(clock)
    rpm, usd = name("rpm"), name("usd")
    counters = [(rpm, Period.MINUTE, 1.0), (usd, Period.MONTH, 1.0)]

    async def states() -> list[tuple[float, float]]:
        snap = await ledger.snapshot(counters)
        return [(snap[c].used, snap[c].reserved) for c, _, _ in counters]

    crashed = await ledger.reserve([Charge(rpm, 1, Period.MINUTE, 1), Charge(usd, 1, Period.MONTH, 1)], ttl_s=2)
    assert await states() == [(0, 1), (0, 1)]
    clock.advance(3)  # still the same minute: 10:41:08
    assert await states() == [(0, 0), (0, 0)]

    live = await ledger.reserve([Charge(usd, 1, Period.MONTH, 1), Charge(rpm, 1, Period.MINUTE, 1)])
    assert await states() == [(0, 1), (0, 1)]
    for counter, period, limit in counters:  # the live reservation fills both again
        with pytest.raises(LedgerRefused):
            await ledger.reserve([Charge(counter, limit, period, 0)])

    late = await ledger.settle(crashed, {rpm: 1, usd: 1})
    assert [(late[c].used, late[c].reserved) for c, _, _ in counters] == [(0, 1), (0, 1)]
    await ledger.settle(live, {rpm: 1, usd: 0.5})
    assert await states() == [(1, 0), (0.5, 0)]
