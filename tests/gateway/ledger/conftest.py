"""One ledger suite, three backends: a fresh SQLite file, a fresh PostgreSQL database, Redis.

Each backend is set up once per session; tests stay apart by using counter
names no other test uses. Redis runs on a random DB index under a random
prefix, and only that prefix is deleted at the end.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import create_engine, migrate
from core.redis import create_redis
from gateway.ledger import Ledger, RedisLedger, SqlLedger
from tests.conftest import PostgresDatabases
from tests.fakes.clock import FakeClock

from .backends import BACKENDS

REDIS_HOST = "redis://127.0.0.1:6379"


@dataclass
class Backend:
    kind: str
    url: str  # database URL, or Redis URL with its DB index
    prefix: str  # Redis key prefix ("" for SQL)
    make: Callable[..., Ledger]  # (clock, tz="UTC", record=None) -> a ledger on the shared engine or client
    resource: AsyncEngine | Redis  # for the tests that look underneath


async def _delete_prefix(client: Redis, prefix: str) -> None:
    batch = [key async for key in client.scan_iter(match=f"{prefix}*", count=500)]
    for start in range(0, len(batch), 500):
        await client.delete(*batch[start : start + 500])


@pytest.fixture(scope="session", params=BACKENDS)
async def backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, pg_databases: PostgresDatabases
) -> AsyncIterator[Backend]:
    kind: str = request.param
    if kind == "redis":
        url = f"{REDIS_HOST}/{random.randint(1, 15)}"
        prefix = f"aitp-test-{secrets.token_hex(6)}:"
        client = create_redis(url)
        yield Backend(
            kind,
            url,
            prefix,
            lambda clock, tz="UTC", record=None: RedisLedger(client, prefix, clock, tz, record=record),
            client,
        )
        await _delete_prefix(client, prefix)
        await client.aclose()
        return
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{Path(tmp_path_factory.mktemp('ledger')) / 'ledger.db'}"
    else:
        url = await pg_databases.create()
    engine = create_engine(url)
    await migrate(engine)
    # Purging is tested on its own; here it would only race the fake clocks of other tests. The
    # generous timeout is for 300 tasks queueing on one row of a busy CI machine (test_unavailable
    # checks the timeout itself).
    # A durable record is for ledgers that can lose their counters; SQL counters are durable and take none.
    yield Backend(
        kind,
        url,
        "",
        lambda clock, tz="UTC", record=None: SqlLedger(engine, clock, tz, timeout_s=30, purge_every_s=None),
        engine,
    )
    await engine.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 11, 23, 10, 41, 5, tzinfo=UTC))


@pytest.fixture
def ledger(backend: Backend, clock: FakeClock) -> Ledger:
    return backend.make(clock)


@pytest.fixture
def name() -> Callable[[str], str]:
    """Counter names no other test (or earlier run) uses."""
    run = secrets.token_hex(4)
    return lambda suffix: f"t{run}:{suffix}"
