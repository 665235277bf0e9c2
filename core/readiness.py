"""Readiness: named checks of what the process depends on, run concurrently, each timed and bounded.

``/readyz`` answers 200 when every check passes and 503 naming the ones that
failed (a load balancer keeps the replica out meanwhile). A check is an async
callable that returns a short detail or raises; blocking checks run on a
thread. Each gets ``timeout_s``: a dependency that hangs is as unready as one
that refuses.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

Check = Callable[[], Awaitable[str | None]]  # a detail ("ok" when None), or raises naming the failure


class NotReady(Exception):
    """A check failed for a reason of its own (not an exception of the dependency's client)."""


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    ok: bool
    detail: str
    latency_ms: float


@dataclass(frozen=True, slots=True)
class ReadinessReport:
    results: tuple[CheckResult, ...]

    @property
    def ready(self) -> bool:
        return all(r.ok for r in self.results)

    @property
    def failed(self) -> list[str]:
        return [r.name for r in self.results if not r.ok]

    def view(self) -> dict[str, Any]:
        """``checks`` maps each name to "ok" or "error: …" (what probes and scripts read); the rest is detail."""
        body: dict[str, Any] = {
            "status": "ok" if self.ready else "not_ready",
            "checks": {r.name: "ok" if r.ok else f"error: {r.detail}" for r in self.results},
            "latency_ms": {r.name: round(r.latency_ms, 2) for r in self.results},
            "details": {r.name: r.detail for r in self.results if r.ok and r.detail != "ok"},
        }
        if not self.ready:
            body["failed"] = self.failed
            body["message"] = "not ready: " + "; ".join(f"{r.name}: {r.detail}" for r in self.results if not r.ok)
        return body


class Readiness:
    def __init__(self, checks: Mapping[str, Check], timeout_s: float = 2.0) -> None:
        self._checks = dict(checks)
        self._timeout_s = timeout_s

    async def run(self) -> ReadinessReport:
        results = await asyncio.gather(*(self._one(name, check) for name, check in self._checks.items()))
        return ReadinessReport(tuple(results))

    async def _one(self, name: str, check: Check) -> CheckResult:
        started = time.perf_counter()
        try:
            detail = await asyncio.wait_for(check(), self._timeout_s)
            ok = True
        except TimeoutError:
            ok, detail = False, f"no answer within {self._timeout_s:g} s"
        except Exception as exc:  # any failure of a dependency's client means "not ready", named
            ok, detail = False, f"{type(exc).__name__}: {_short(str(exc))}".rstrip(": ")
        return CheckResult(name, ok, detail or "ok", (time.perf_counter() - started) * 1000)


def _short(message: str, limit: int = 200) -> str:
    message = " ".join(message.split())
    return message if len(message) <= limit else message[: limit - 1] + "…"


def database_check(engine: AsyncEngine) -> Check:
    async def check() -> str | None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return None

    return check


def redis_check(client: Redis) -> Check:
    async def check() -> str | None:
        await client.ping()
        return None

    return check


def blocking_check(call: Callable[[], str | None]) -> Check:
    """A check whose client blocks (the broker's Redis pool, Chroma): run on a thread."""

    async def check() -> str | None:
        return await asyncio.to_thread(call)

    return check
