"""Budget and rate-limit ledger: reserve the worst case, settle the truth, never overspend.

One interface (:class:`Ledger`) with two backends that pass the same tests:
SQL (SQLite embedded, PostgreSQL for replicas) and Redis (Lua scripts). The SQL
counters are durable; Redis ones are rebuilt by a :class:`DurableRecord` when Redis
loses them.
"""

from __future__ import annotations

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from core.clock import Clock, SystemClock
from gateway.ledger.base import (
    TOLERANCE,
    Charge,
    CounterState,
    Ledger,
    LedgerError,
    LedgerRefused,
    LedgerUnavailable,
    Period,
    Reservation,
    refuses,
)
from gateway.ledger.rebuild import DurableRecord
from gateway.ledger.redis import RedisLedger
from gateway.ledger.sql import SqlLedger

__all__ = [
    "TOLERANCE",
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
    "create_ledger",
    "refuses",
]


def create_ledger(
    *,
    database: AsyncEngine,
    redis_client: Redis | None,
    prefix: str,
    tz: str,
    clock: Clock,
    record: DurableRecord | None = None,
) -> Ledger:
    """Redis when a client is given (replicas share it), else the app's database.

    ``record`` rebuilds the Redis counters it tracks when Redis loses them; the
    SQL ledger needs none (its counters are in the database already).
    """
    if redis_client is not None:
        return RedisLedger(redis_client, prefix, clock, tz, record=record)
    return SqlLedger(database, clock, tz)
