"""Counters the backend lost are rebuilt from the durable record before anything is admitted.

On Redis, "lost" means what a restart without persistence does: this test's
keys are deleted. SQL counters are durable, so on SQLite and PostgreSQL nothing
is lost and the same assertions hold without any rebuild.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC

import pytest
from redis.asyncio import Redis

from gateway.ledger import Charge, Ledger, LedgerRefused, LedgerUnavailable, Period
from gateway.ledger.windows import Window, window_for
from tests.fakes.clock import FakeClock

from .conftest import Backend

Name = Callable[[str], str]
PERIODS = (Period.DAY, Period.MONTH, Period.TOTAL)


class Record:
    """The durable record (usage rows, in the app): what was settled, kept apart from the ledger."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.spent: dict[tuple[str, str], float] = {}
        self.reads = 0
        self.broken = False
        self._delay_s = delay_s

    def tracks(self, counter: str) -> bool:
        return ":budget" in counter

    async def durable_usage(self, wanted: Sequence[tuple[str, Window]]) -> Mapping[tuple[str, str], float]:
        self.reads += 1
        await asyncio.sleep(self._delay_s)
        if self.broken:
            raise LedgerUnavailable("the record is unreachable")
        return {(counter, window.key): self.spent.get((counter, window.key), 0.0) for counter, window in wanted}


async def spend(ledger: Ledger, record: Record, clock: FakeClock, charges: list[Charge], actual: float) -> None:
    """One call: reserve, settle, and the usage row that reaches the record afterwards."""
    reservation = await ledger.reserve(charges)
    await ledger.settle(reservation, {charge.counter: actual for charge in charges})
    for charge in charges:
        key = (charge.counter, window_for(charge.period, clock.now(), UTC).key)
        record.spent[key] = record.spent.get(key, 0.0) + actual


async def lose_counters(backend: Backend, name: Name) -> None:
    if isinstance(backend.resource, Redis):
        keys = [key async for key in backend.resource.scan_iter(match=f"{backend.prefix}*{name('')}*", count=500)]
        if keys:
            await backend.resource.delete(*keys)


async def used_and_reserved(ledger: Ledger, counter: str, period: Period) -> tuple[float, float]:
    state = (await ledger.snapshot([(counter, period, 100)]))[counter]
    return state.used, state.reserved


async def test_every_period_is_rebuilt_before_anything_is_admitted(
    backend: Backend, clock: FakeClock, name: Name
) -> None:
    record = Record()
    ledger = backend.make(clock, record=record)
    counters = {period: name(f"budget:{period}") for period in PERIODS}
    for _ in range(2):
        await spend(ledger, record, clock, [Charge(c, 100, p, 30) for p, c in counters.items()], 30)
    await lose_counters(backend, name)

    for period, counter in counters.items():
        with pytest.raises(LedgerRefused) as info:
            await ledger.reserve([Charge(counter, 100, period, 41)])
        assert (info.value.used, info.value.reserved) == (60, 0)
    await ledger.reserve([Charge(c, 100, p, 40) for p, c in counters.items()])
    for period, counter in counters.items():
        assert await used_and_reserved(ledger, counter, period) == (60, 40)

    # the next day is a window of its own: rebuilt from that day's record, which is empty
    clock.advance(86400)
    await lose_counters(backend, name)
    assert await used_and_reserved(ledger, counters[Period.DAY], Period.DAY) == (0, 0)
    assert (await used_and_reserved(ledger, counters[Period.TOTAL], Period.TOTAL))[0] == 60


async def test_replicas_rebuilding_at_once_count_the_record_once(
    backend: Backend, clock: FakeClock, name: Name
) -> None:
    record = Record(delay_s=0.05)
    replicas = [backend.make(clock, record=record), backend.make(clock, record=record)]
    counter = name("budget:tokens")
    await spend(replicas[0], record, clock, [Charge(counter, 100, Period.TOTAL, 30)], 60)
    await lose_counters(backend, name)
    record.reads = 0

    async def attempt(i: int) -> bool:
        try:
            await replicas[i % 2].reserve([Charge(counter, 100, Period.TOTAL, 10)])
        except LedgerRefused:
            return False
        return True

    admitted = await asyncio.gather(*[attempt(i) for i in range(10)])
    assert admitted.count(True) == 4
    assert await used_and_reserved(replicas[1], counter, Period.TOTAL) == (60, 40)
    # one read of the record per replica process, however many requests were waiting
    assert record.reads <= 2
    assert record.reads >= (1 if isinstance(backend.resource, Redis) else 0)


async def test_a_rebuild_never_lowers_what_a_counter_holds(backend: Backend, clock: FakeClock, name: Name) -> None:
    counter = name("budget:usd")
    unmarked = backend.make(clock)  # a replica of a version that keeps no marker
    reservation = await unmarked.reserve([Charge(counter, 100, Period.MONTH, 70)])
    await unmarked.settle(reservation, {counter: 70})
    record = Record()
    record.spent[(counter, window_for(Period.MONTH, clock.now(), UTC).key)] = 50  # its rows not all flushed yet
    assert await used_and_reserved(backend.make(clock, record=record), counter, Period.MONTH) == (70, 0)


async def test_an_unreadable_record_fails_closed(backend: Backend, clock: FakeClock, name: Name) -> None:
    if not isinstance(backend.resource, Redis):
        pytest.skip("SQL counters are durable; nothing is ever rebuilt")
    record = Record()
    ledger = backend.make(clock, record=record)
    counter = name("budget:tokens")
    await spend(ledger, record, clock, [Charge(counter, 100, Period.DAY, 50)], 50)
    await lose_counters(backend, name)
    record.broken = True
    with pytest.raises(LedgerUnavailable):
        await ledger.reserve([Charge(counter, 100, Period.DAY, 10)])
    with pytest.raises(LedgerUnavailable):
        await ledger.snapshot([(counter, Period.DAY, 100)])
    record.broken = False
    with pytest.raises(LedgerRefused) as info:
        await ledger.reserve([Charge(counter, 100, Period.DAY, 51)])
    assert info.value.used == 50


async def test_untracked_counters_start_again_at_zero(backend: Backend, clock: FakeClock, name: Name) -> None:
    if not isinstance(backend.resource, Redis):
        pytest.skip("SQL counters are durable; nothing is ever lost")
    record = Record()
    ledger = backend.make(clock, record=record)
    rpm = name("rl:rpm")  # a minute window: losing it forgives at most one minute
    await spend(ledger, record, clock, [Charge(rpm, 5, Period.MINUTE, 1)], 1)
    await lose_counters(backend, name)
    record.reads = 0
    assert await used_and_reserved(ledger, rpm, Period.MINUTE) == (0, 0)
    assert record.reads == 0


async def test_a_reservation_lost_with_the_counters_settles_to_nothing(
    backend: Backend, clock: FakeClock, name: Name
) -> None:
    """The documented gap: a call in flight when Redis was lost reaches the counter only through its usage row."""
    record = Record()
    ledger = backend.make(clock, record=record)
    counter = name("budget:tokens")
    await spend(ledger, record, clock, [Charge(counter, 100, Period.TOTAL, 30)], 30)
    in_flight = await ledger.reserve([Charge(counter, 100, Period.TOTAL, 40)])
    await lose_counters(backend, name)
    assert await used_and_reserved(ledger, counter, Period.TOTAL) == (
        (30, 0) if isinstance(backend.resource, Redis) else (30, 40)
    )
    await ledger.settle(in_flight, {counter: 25})
    assert await used_and_reserved(ledger, counter, Period.TOTAL) == (
        (30, 0) if isinstance(backend.resource, Redis) else (55, 0)
    )
