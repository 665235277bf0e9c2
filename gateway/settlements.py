"""Ledger settlements that must land: an upstream call that happened is always paid for.

A settle or release runs after the upstream answered, so it cannot fail the
request: the answer exists and the tokens were spent. It is retried at once a
few times (a dropped connection recovers in milliseconds), and if the ledger
stays unreachable it is queued and retried in the background until it lands.
Both ledgers settle idempotently (a reservation is settled once, by id), so a
retry after a write that did commit changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry, Gauge
from sqlalchemy.exc import SQLAlchemyError
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from .ledger import LedgerUnavailable

log = logging.getLogger("aitp.gateway.settlements")

# What a ledger outage looks like from here; anything else is a bug and is raised.
OUTAGE: tuple[type[BaseException], ...] = (LedgerUnavailable, SQLAlchemyError, OSError, TimeoutError)

Operation = Callable[[], Awaitable[object]]


class Settlements:
    def __init__(
        self,
        registry: CollectorRegistry,
        attempts: int = 3,
        retry_interval_s: float = 1.0,
        max_pending: int = 100_000,
    ) -> None:
        self._attempts = attempts
        self._interval = retry_interval_s
        self._pending: deque[tuple[str, Operation]] = deque(maxlen=max_pending)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.pending = Gauge(
            "aitp_ledger_deferred_settlements",
            "Ledger settlements waiting for the ledger to come back",
            registry=registry,
        )
        self.pending.set_function(lambda: len(self._pending))

    @property
    def backlog(self) -> int:
        return len(self._pending)

    async def run(self, what: str, operation: Operation) -> None:
        """Run ``operation`` now, retrying briefly; if the ledger stays down, keep it for later. Never raises."""
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(self._attempts),
                wait=wait_exponential(multiplier=0.05, max=0.5),
                retry=retry_if_exception_type(OUTAGE),
                reraise=True,
            ):
                with attempt:
                    await operation()
        except OUTAGE as exc:
            if len(self._pending) == self._pending.maxlen:
                log.error("dropping the oldest deferred ledger settlement: %d are waiting", len(self._pending))
            self._pending.append((what, operation))
            self._wake.set()
            log.warning("%s failed (%s); retrying in the background", what, type(exc).__name__)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._retry_forever(), name="ledger-settlements")

    async def stop(self) -> None:
        """One last pass over what is waiting, then stop; what still fails expires with its reservation ttl."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._drain()
        if self._pending:
            log.error("%d ledger settlements could not be written before shutdown", len(self._pending))

    async def _retry_forever(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(self._interval)
            await self._drain()
            if not self._pending:
                self._wake.clear()

    async def _drain(self) -> None:
        for _ in range(len(self._pending)):
            what, operation = self._pending[0]
            try:
                await operation()
            except OUTAGE:
                return  # still down: keep the order and try again after the interval
            except Exception:
                log.exception("%s failed for good and was dropped", what)
            self._pending.popleft()
