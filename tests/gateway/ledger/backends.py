"""Building a ledger for a backend by name, shared by the fixtures and the worker processes."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.clock import Clock
from core.db import create_engine
from core.redis import create_redis
from gateway.ledger import Ledger, RedisLedger, SqlLedger

BACKENDS = ("sqlite", "postgres", "redis")


@dataclass
class Opened:
    """A ledger plus what has to be closed after it."""

    ledger: Ledger
    closers: list[object] = field(default_factory=list)

    async def close(self) -> None:
        await self.ledger.close()
        for resource in self.closers:
            if hasattr(resource, "dispose"):
                await resource.dispose()
            else:
                await resource.aclose()  # type: ignore[attr-defined]


def open_ledger(kind: str, url: str, prefix: str, clock: Clock, tz: str = "UTC") -> Opened:
    """A ledger on its own engine or client (worker processes use this)."""
    if kind == "redis":
        client = create_redis(url)
        return Opened(RedisLedger(client, prefix, clock, tz), [client])
    engine = create_engine(url)
    return Opened(SqlLedger(engine, clock, tz, timeout_s=30), [engine])
