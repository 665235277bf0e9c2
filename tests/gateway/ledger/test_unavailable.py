"""An unreachable or silent backend is reported as LedgerUnavailable, quickly, never as a hang."""

from __future__ import annotations

import socket
import time
from collections.abc import Awaitable, Callable, Iterator

import pytest

from core.clock import SystemClock
from core.db import create_engine
from core.redis import create_redis
from gateway.ledger import Charge, Ledger, LedgerUnavailable, Period, RedisLedger, SqlLedger, create_ledger


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def silent_port() -> Iterator[int]:
    """Accepts connections (the kernel completes the handshake) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


async def assert_fails_fast(ledger: Ledger, within_s: float) -> None:
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: ledger.reserve([Charge("budget:1:usd", 10, Period.DAY, 1)]),
        lambda: ledger.snapshot([("budget:1:usd", Period.DAY, 10)]),
        lambda: ledger.claim_once("alert:1"),
    ]
    for call in calls:
        started = time.monotonic()
        with pytest.raises(LedgerUnavailable):
            await call()
        assert time.monotonic() - started < within_s


async def test_redis_refusing_connections(closed_port: int) -> None:
    client = create_redis(f"redis://127.0.0.1:{closed_port}/0")
    try:
        await assert_fails_fast(RedisLedger(client, "unreachable:", SystemClock()), within_s=1.5)
    finally:
        await client.aclose()


async def test_redis_that_never_answers(silent_port: int) -> None:
    client = create_redis(f"redis://127.0.0.1:{silent_port}/0", socket_timeout_s=0.2)
    try:
        await assert_fails_fast(RedisLedger(client, "silent:", SystemClock()), within_s=1.5)
    finally:
        await client.aclose()


async def test_postgres_refusing_connections(closed_port: int) -> None:
    engine = create_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{closed_port}/aitp")
    try:
        await assert_fails_fast(SqlLedger(engine, SystemClock()), within_s=1.5)
    finally:
        await engine.dispose()


async def test_postgres_that_never_answers(silent_port: int) -> None:
    engine = create_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{silent_port}/aitp")
    try:
        await assert_fails_fast(SqlLedger(engine, SystemClock(), timeout_s=0.3), within_s=1.5)
    finally:
        await engine.dispose()


async def test_create_ledger_picks_redis_when_given_a_client(closed_port: int) -> None:
    engine = create_engine("sqlite+aiosqlite:///:memory:")
    client = create_redis(f"redis://127.0.0.1:{closed_port}/0")
    try:
        assert isinstance(
            create_ledger(database=engine, redis_client=client, prefix="p:", tz="Asia/Shanghai", clock=SystemClock()),
            RedisLedger,
        )
        assert isinstance(
            create_ledger(database=engine, redis_client=None, prefix="p:", tz="UTC", clock=SystemClock()), SqlLedger
        )
    finally:
        await client.aclose()
        await engine.dispose()
