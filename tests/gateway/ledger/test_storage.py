"""What each backend leaves behind: the migration matches the tables, old windows go away."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from redis.asyncio import Redis
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

import gateway.ledger
from core.db import Base
from gateway.ledger import Charge, Period, SqlLedger
from tests.fakes.clock import FakeClock

from .conftest import Backend

Name = Callable[[str], str]


def test_public_names() -> None:
    assert sorted(gateway.ledger.__all__) == [
        "Charge",
        "Clock",
        "CounterState",
        "DurableRecord",
        "Ledger",
        "LedgerError",
        "LedgerRefused",
        "LedgerUnavailable",
        "Period",
        "RedisLedger",
        "Reservation",
        "SqlLedger",
        "SystemClock",
        "TOLERANCE",
        "create_ledger",
        "refuses",
    ]


def _ledger_diffs(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return [diff for diff in compare_metadata(context, Base.metadata) if "ledger_" in repr(diff)]


async def test_migration_creates_the_tables_the_code_uses(backend: Backend) -> None:
    if not isinstance(backend.resource, AsyncEngine):
        pytest.skip("SQL backends only")
    async with backend.resource.connect() as conn:
        assert await conn.run_sync(_ledger_diffs) == []


async def test_sql_purges_windows_that_ended_long_ago(backend: Backend, name: Name) -> None:
    if not isinstance(backend.resource, AsyncEngine):
        pytest.skip("SQL backends only")
    engine = backend.resource
    # Years before every other test's clock, so this purge cannot touch their rows.
    clock = FakeClock(datetime(2020, 3, 1, 12, 0, 30, tzinfo=UTC))
    ledger = SqlLedger(engine, clock, purge_every_s=60)
    rpm, daily, lifetime, claim = name("rpm"), name("daily"), name("lifetime"), name("claim")
    charges = [
        Charge(rpm, 10, Period.MINUTE, 1),
        Charge(daily, 10, Period.DAY, 1),
        Charge(lifetime, 10, Period.TOTAL, 1),
    ]
    await ledger.settle(await ledger.reserve(charges), {rpm: 1, daily: 1, lifetime: 1})
    # never settled: one in a window that gets purged, one in a window that never ends
    await ledger.reserve([Charge(rpm, 10, Period.MINUTE, 1), Charge(lifetime, 10, Period.TOTAL, 1)], ttl_s=5)
    assert await ledger.claim_once(claim, ttl_s=30)

    clock.advance(3 * 86400)  # the next reserve purges
    await ledger.reserve([Charge(rpm, 10, Period.MINUTE, 1)])
    async with engine.connect() as conn:
        windows = await conn.execute(
            text("SELECT counter, window_key FROM ledger_counters WHERE counter IN (:a, :b, :c)"),
            {"a": rpm, "b": daily, "c": lifetime},
        )
        assert sorted(windows.all()) == sorted([(rpm, "2020-03-04T12:00"), (lifetime, "total")])
        left = await conn.execute(
            text("SELECT counter, window_key FROM ledger_reservations WHERE counter IN (:a, :c)"),
            {"a": rpm, "c": lifetime},
        )
        assert sorted(left.all()) == sorted([(rpm, "2020-03-04T12:00"), (lifetime, "total")])
        claims = await conn.execute(text("SELECT count(*) FROM ledger_claims WHERE key = :k"), {"k": claim})
        assert claims.scalar() == 0
    snap = (await ledger.snapshot([(lifetime, Period.TOTAL, 10)]))[lifetime]
    assert (snap.used, snap.reserved) == (1, 0)
    await ledger.reserve([Charge(lifetime, 10, Period.TOTAL, 9)])  # gives the expired one back, then fits


async def test_redis_keys_expire_after_their_window(backend: Backend, clock: FakeClock, name: Name) -> None:
    if not isinstance(backend.resource, Redis):
        pytest.skip("Redis only")
    client = backend.resource
    ledger = backend.make(clock)
    rpm, daily, lifetime, claim = name("rpm"), name("daily"), name("lifetime"), name("claim")
    await ledger.reserve(
        [Charge(rpm, 10, Period.MINUTE, 1), Charge(daily, 10, Period.DAY, 1), Charge(lifetime, 10, Period.TOTAL, 1)]
    )
    await ledger.claim_once(claim, ttl_s=30)
    prefix = backend.prefix
    # clock: 2026-11-23T10:41:05Z; minutes are kept two hours after they end, days two days
    expected = {
        f"{prefix}lc:2026-11-23T10:41:{rpm}": 55 + 2 * 3600,
        f"{prefix}lr:2026-11-23T10:41:{rpm}": 55 + 2 * 3600,
        f"{prefix}lc:2026-11-23:{daily}": (13 * 3600 + 18 * 60 + 55) + 2 * 86400,
        f"{prefix}lc:total:{lifetime}": -1,
        f"{prefix}lr:total:{lifetime}": -1,
    }
    for key, ttl in expected.items():
        actual = await client.ttl(key)
        assert ttl - 5 <= actual <= ttl if ttl > 0 else actual == ttl, key
    assert 85_000 <= await client.pttl(f"{prefix}claim:{claim}") <= 90_000
