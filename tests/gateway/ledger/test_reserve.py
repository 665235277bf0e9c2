"""Reserve, settle and release: the admission rule and the bookkeeping, on every backend."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from gateway.ledger import Charge, Ledger, LedgerRefused, Period
from tests.fakes.clock import FakeClock

Name = Callable[[str], str]
TOMORROW = datetime(2026, 11, 24, tzinfo=UTC)


def day(counter: str, limit: float, amount: float) -> Charge:
    return Charge(counter, limit, Period.DAY, amount)


async def state(
    ledger: Ledger, counter: str, limit: float | None = None, period: Period = Period.DAY
) -> tuple[float, float]:
    snap = (await ledger.snapshot([(counter, period, limit)]))[counter]
    return snap.used, snap.reserved


async def test_reserve_within_limit_then_refuse_with_what_is_left(ledger: Ledger, name: Name) -> None:
    budget = name("budget:usd")
    first = await ledger.reserve([day(budget, 10, 4)])
    await ledger.reserve([day(budget, 10, 4)])
    assert first.items == ((budget, "2026-11-23", 4),)

    with pytest.raises(LedgerRefused) as info:
        await ledger.reserve([day(budget, 10, 4)])
    refused = info.value
    assert (refused.counter, refused.limit, refused.used, refused.reserved) == (budget, 10, 0, 8)
    assert refused.remaining == pytest.approx(2)
    assert refused.resets_at == TOMORROW
    assert budget in str(refused) and "2 of 10 left" in str(refused) and "2026-11-24T00:00Z" in str(refused)

    await ledger.reserve([day(budget, 10, 2)])  # exactly the rest still fits
    snap = (await ledger.snapshot([(budget, Period.DAY, 10)]))[budget]
    assert (snap.used, snap.reserved, snap.limit, snap.remaining) == (0, 10, 10, 0)
    assert snap.window_start == datetime(2026, 11, 23, tzinfo=UTC) and snap.resets_at == TOMORROW


async def test_full_counter_refuses_even_zero_and_limit_zero_blocks(ledger: Ledger, name: Name) -> None:
    budget, blocked = name("full"), name("zero")
    await ledger.reserve([day(budget, 5, 0)])  # zero passes while there is room
    await ledger.reserve([day(budget, 5, 5)])
    with pytest.raises(LedgerRefused):
        await ledger.reserve([day(budget, 5, 0)])
    with pytest.raises(LedgerRefused) as info:
        await ledger.reserve([day(blocked, 0, 0)])
    assert info.value.remaining == 0


async def test_all_or_nothing_across_counters(ledger: Ledger, name: Name) -> None:
    project, key, user = name("project"), name("key"), name("user")
    with pytest.raises(LedgerRefused) as info:
        await ledger.reserve(
            [
                day(project, 10, 5),
                Charge(key, 3, Period.MONTH, 5),
                Charge(user, 100, Period.TOTAL, 1),
            ]
        )
    assert info.value.counter == key and info.value.resets_at == datetime(2026, 12, 1, tzinfo=UTC)
    snaps = await ledger.snapshot([(project, Period.DAY, 10), (key, Period.MONTH, 3), (user, Period.TOTAL, 100)])
    assert [(s.used, s.reserved) for s in snaps.values()] == [(0, 0)] * 3
    assert snaps[user].resets_at is None and snaps[user].window_start is None

    # The first charge that cannot be afforded, in the order given, is the one reported.
    with pytest.raises(LedgerRefused) as info:
        await ledger.reserve([day(user, 1, 2), day(project, 1, 2)])
    assert info.value.counter == user


async def test_settle_records_actual_and_frees_the_rest(ledger: Ledger, name: Name) -> None:
    usd, tokens = name("usd"), name("tpm")
    reservation = await ledger.reserve([day(usd, 10, 5), Charge(tokens, 1000, Period.MINUTE, 800)])
    states = await ledger.settle(reservation, {usd: 3, tokens: 250})
    assert (states[usd].used, states[usd].reserved, states[usd].limit) == (3, 0, 10)
    assert (states[tokens].used, states[tokens].reserved, states[tokens].limit) == (250, 0, 1000)
    assert states[tokens].resets_at == datetime(2026, 11, 23, 10, 42, tzinfo=UTC)
    assert await state(ledger, usd) == (3, 0)
    await ledger.reserve([day(usd, 10, 7)])  # exactly what is left


async def test_actual_above_reserved_is_recorded(ledger: Ledger, name: Name) -> None:
    usd = name("usd")
    reservation = await ledger.reserve([day(usd, 10, 2)])
    states = await ledger.settle(reservation, {usd: 12})
    assert (states[usd].used, states[usd].reserved, states[usd].remaining) == (12, 0, 0)
    with pytest.raises(LedgerRefused) as info:
        await ledger.reserve([day(usd, 10, 0)])
    assert info.value.used == 12


async def test_settle_and_release_are_idempotent(ledger: Ledger, name: Name) -> None:
    usd, other = name("usd"), name("other")
    reservation = await ledger.reserve([day(usd, 10, 4), day(other, 10, 4)])
    await ledger.settle(reservation, {usd: 3})
    again = await ledger.settle(reservation, {usd: 3, other: 9})
    await ledger.release(reservation)
    assert (again[usd].used, again[usd].reserved) == (3, 0)
    assert (again[other].used, again[other].reserved) == (0, 0)
    assert await state(ledger, usd) == (3, 0)

    released = await ledger.reserve([day(usd, 10, 7)])
    await ledger.release(released)
    await ledger.release(released)
    await ledger.settle(released, {usd: 5})
    assert await state(ledger, usd) == (3, 0)


async def test_release_returns_everything(ledger: Ledger, name: Name) -> None:
    rpm = name("rpm")
    held = [await ledger.reserve([Charge(rpm, 3, Period.MINUTE, 1)]) for _ in range(3)]
    with pytest.raises(LedgerRefused):
        await ledger.reserve([Charge(rpm, 3, Period.MINUTE, 1)])
    for reservation in held:
        await ledger.release(reservation)
    assert await state(ledger, rpm, period=Period.MINUTE) == (0, 0)
    await ledger.reserve([Charge(rpm, 3, Period.MINUTE, 3)])


async def test_small_float_amounts_add_up_within_tolerance(ledger: Ledger, name: Name) -> None:
    tenths, usd = name("tenths"), name("usd")
    for _ in range(10):
        await ledger.reserve([day(tenths, 1.0, 0.1)])
    with pytest.raises(LedgerRefused):
        await ledger.reserve([day(tenths, 1.0, 0.1)])

    # USD at ~1e-7 per token: 1,000 calls of 1.234e-7 each land exactly where they should.
    reservation = await ledger.reserve([day(usd, 1e-3, 5e-4)])
    states = await ledger.settle(reservation, {usd: 1.234e-4})
    assert states[usd].used == pytest.approx(1.234e-4, rel=1e-12)
    await ledger.reserve([day(usd, 1e-3, 1e-3 - 1.234e-4)])
    with pytest.raises(LedgerRefused):
        await ledger.reserve([day(usd, 1e-3, 1e-7)])


async def test_unknown_counters_read_as_zero_and_keep_the_last_limit(
    ledger: Ledger, name: Name, clock: FakeClock
) -> None:
    fresh, known = name("fresh"), name("known")
    await ledger.reserve([day(known, 42, 1)])
    snaps = await ledger.snapshot([(fresh, Period.DAY, None), (known, Period.DAY, None)])
    assert (snaps[fresh].used, snaps[fresh].reserved, snaps[fresh].limit) == (0, 0, None)
    assert snaps[known].limit == 42 and snaps[known].remaining == 41


async def test_bad_input_is_rejected_before_touching_the_backend(ledger: Ledger, name: Name) -> None:
    usd = name("usd")
    with pytest.raises(ValueError, match="twice"):
        await ledger.reserve([day(usd, 10, 1), day(usd, 10, 1)])
    with pytest.raises(ValueError, match="amount"):
        day(usd, 10, -1)
    with pytest.raises(ValueError, match="limit"):
        day(usd, float("inf"), 1)
    with pytest.raises(ValueError, match="ttl_s"):
        await ledger.reserve([day(usd, 10, 1)], ttl_s=0)
    with pytest.raises(ValueError, match="ttl_s"):
        await ledger.reserve([day(usd, 10, 1)], ttl_s=3601)
    reservation = await ledger.reserve([day(usd, 10, 1)])
    with pytest.raises(ValueError, match="actual"):
        await ledger.settle(reservation, {usd: float("nan")})
    empty = await ledger.reserve([])
    assert empty.items == () and await ledger.settle(empty, {}) == {}
    assert await state(ledger, usd) == (0, 1)
