"""The pool's contract: a run borrows an isolated browser context, under a hard cap on browsers.

``lease(options)`` waits (bounded queue, bounded time) for a slot on a
browser, creates a fresh context with ``options`` and yields it; on exit the
context is closed and the slot freed. Implementations must hold these rules:

- never more than ``max_browsers`` browser processes, under any load;
- a browser serves at most ``contexts_per_browser`` runs at once and is
  replaced after ``recycle_after_runs`` runs, or as soon as it crashes;
- a run that cannot be served fails fast with :class:`PoolSaturated` (queue
  full, waited too long, memory below the floor) or :class:`BrowserUnavailable`
  (launches keep failing: the circuit breaker is open), each with a retry-after.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from playwright.async_api import BrowserContext

from core.errors import APIError


class PoolSaturated(APIError):
    status = 503
    type = "server_error"
    code = "browser_pool_saturated"

    def __init__(self, message: str, retry_after_s: float) -> None:
        seconds = max(1, round(retry_after_s))
        super().__init__(message, headers={"Retry-After": str(seconds)}, extra={"retry_after_s": seconds})
        self.retry_after_s = float(seconds)


class BrowserUnavailable(PoolSaturated):
    code = "browser_unavailable"


@dataclass(frozen=True, slots=True)
class PoolStats:
    browsers: int
    in_use: int
    queued: int
    launched: int
    recycled: int
    peak_browsers: int
    breaker_open: bool


class BrowserPool(Protocol):
    def lease(self, options: dict[str, Any]) -> AbstractAsyncContextManager[BrowserContext]:
        """A fresh context made with ``options`` (Playwright ``new_context`` arguments), closed on exit."""
        ...

    def stats(self) -> PoolStats: ...

    def browser_pids(self) -> list[int]:
        """Process ids of the browsers alive now (their main processes)."""
        ...

    async def close(self) -> None: ...
