"""The Chromium pool: Playwright's async API driving Debian's Chromium, under a hard cap.

One pool per worker process, on the process's event loop; it starts
Playwright on first use. Slots are handed out under one asyncio condition, and
a browser being launched counts against the cap before it exists, so the cap
holds however many runs arrive at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import psutil
from playwright.async_api import Browser, BrowserContext, Playwright, async_playwright
from playwright.async_api import Error as PlaywrightError

from core.settings import BrowserSettings

from ..metrics import BrowserMetrics
from .base import BrowserUnavailable, PoolSaturated, PoolStats

log = logging.getLogger("aitp.browser.pool")

LAUNCH_FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-dev-shm-usage",
)


@dataclass(eq=False)
class _Browser:
    browser: Browser
    runs: int = 0
    active: int = 0
    dead: bool = False
    contexts: set[BrowserContext] = field(default_factory=set)


class ChromiumPool:
    def __init__(self, settings: BrowserSettings, metrics: BrowserMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self._playwright: Playwright | None = None
        self._browsers: list[_Browser] = []
        self._launching = 0
        self._closing = 0  # retired browsers still shutting down count against the cap too
        self._waiting = 0
        self._cond: asyncio.Condition | None = None
        self._failures = 0
        self._open_until = 0.0
        self._launched = 0
        self._recycled = 0
        self._peak = 0
        self._closed = False
        self._driver_pid: int | None = None
        self._start_lock: asyncio.Lock | None = None

    # -- the contract -------------------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def lease(self, options: dict[str, Any]) -> AsyncIterator[BrowserContext]:
        slot = await self._acquire()
        context: BrowserContext | None = None
        try:
            try:
                context = await slot.browser.new_context(**options)
            except PlaywrightError as exc:
                slot.dead = True
                raise BrowserUnavailable(
                    f"the browser could not open a context ({exc.message[:200]}); retry", 5
                ) from None
            slot.contexts.add(context)
            self.metrics.in_use.inc()
            try:
                yield context
            finally:
                self.metrics.in_use.dec()
        finally:
            await self._release(slot, context)

    def stats(self) -> PoolStats:
        return PoolStats(
            browsers=len(self._browsers),
            in_use=sum(b.active for b in self._browsers),
            queued=self._waiting,
            launched=self._launched,
            recycled=self._recycled,
            peak_browsers=self._peak,
            breaker_open=time.monotonic() < self._open_until,
        )

    def browser_pids(self) -> list[int]:
        """Main Chromium processes of this pool: children of its Playwright driver, zombies left out."""
        if self._driver_pid is None:
            return []
        pids = []
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(self._driver_pid).children():
                with contextlib.suppress(psutil.Error):  # gone, or a zombie, while being looked at
                    if "chrom" in child.name() and child.status() != psutil.STATUS_ZOMBIE:
                        pids.append(child.pid)
        return pids

    async def close(self) -> None:
        self._closed = True
        browsers, self._browsers = self._browsers, []
        for entry in browsers:
            with contextlib.suppress(PlaywrightError):
                await entry.browser.close()
        self.metrics.browsers.set(0)
        if self._playwright is not None:
            with contextlib.suppress(PlaywrightError):
                await self._playwright.stop()
            self._playwright = None

    # -- slots ---------------------------------------------------------------------------------------------------

    def _condition(self) -> asyncio.Condition:
        if self._cond is None:
            self._cond = asyncio.Condition()
        return self._cond

    def _free_slot(self) -> _Browser | None:
        for entry in self._browsers:
            if (
                not entry.dead
                and entry.active < self.settings.contexts_per_browser
                and entry.runs < self.settings.recycle_after_runs
            ):
                return entry
        return None

    async def _acquire(self) -> _Browser:
        if self._closed:
            raise BrowserUnavailable("the browser pool is shutting down; retry on another worker", 5)
        remaining_open = self._open_until - time.monotonic()
        if remaining_open > 0:
            self.metrics.refusals.labels("breaker").inc()
            raise BrowserUnavailable(
                f"browsers failed to launch {self._failures} times in a row; the pool refuses runs for "
                f"{remaining_open:.0f} s more (check browser.executable_path and the machine's memory)",
                remaining_open,
            )
        cond = self._condition()
        async with cond:
            full = (
                self._free_slot() is None
                and len(self._browsers) + self._launching + self._closing >= self.settings.max_browsers
            )
            if full and self._waiting >= self.settings.queue_size:
                self.metrics.refusals.labels("queue_full").inc()
                raise PoolSaturated(
                    f"the browser pool is saturated: {self._waiting} runs wait for {self.settings.max_browsers} "
                    "browsers; retry later or raise browser.max_browsers / browser.queue_size",
                    self.settings.queue_wait_s / 4,
                )
            self._waiting += 1
            self.metrics.queue.inc()
            deadline = time.monotonic() + self.settings.queue_wait_s
            try:
                while True:
                    slot = self._free_slot()
                    if slot is not None:
                        slot.active += 1
                        slot.runs += 1
                        return slot
                    if self._can_launch():
                        self._launching += 1
                        break
                    left = deadline - time.monotonic()
                    if left <= 0:
                        self.metrics.refusals.labels("wait_timeout").inc()
                        raise PoolSaturated(
                            f"no browser came free within {self.settings.queue_wait_s:.0f} s "
                            "(browser.queue_wait_s); retry later or raise browser.max_browsers",
                            self.settings.queue_wait_s / 2,
                        )
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(cond.wait(), timeout=min(left, 1.0))
            finally:
                self._waiting -= 1
                self.metrics.queue.dec()
        return await self._launch()

    def _can_launch(self) -> bool:
        alive = len(self._browsers) + self._launching + self._closing
        if alive >= self.settings.max_browsers:
            return False
        if alive == 0:
            return True  # one browser is always allowed: the floor guards extra browsers
        available_mb = psutil.virtual_memory().available / (1024 * 1024)
        if available_mb < self.settings.min_free_memory_mb:
            self.metrics.refusals.labels("memory").inc()
            return False
        return True

    async def _launch(self) -> _Browser:
        started = time.perf_counter()
        try:
            playwright = await self._started()
            browser = await playwright.chromium.launch(
                executable_path=str(self.settings.executable_path),
                args=list(LAUNCH_FLAGS),
                headless=True,
                timeout=self.settings.launch_timeout_s * 1000,
            )
        except (PlaywrightError, OSError) as exc:
            await self._launch_failed(exc)
            raise BrowserUnavailable(
                f"Chromium did not start ({str(exc)[:300]}); check browser.executable_path "
                f"({self.settings.executable_path}) and that the machine has memory to spare",
                self.settings.breaker_open_s,
            ) from None
        except BaseException:
            await self._launch_failed(None)
            raise
        self.metrics.launch_seconds.observe(time.perf_counter() - started)
        entry = _Browser(browser, runs=1, active=1)
        browser.on("disconnected", lambda _b: self._on_disconnected(entry))
        async with self._condition():
            self._launching -= 1
            self._failures = 0
            self._browsers.append(entry)
            self._launched += 1
            self._peak = max(self._peak, len(self._browsers))
            self.metrics.browsers.set(len(self._browsers))
        return entry

    async def _started(self) -> Playwright:
        """The pool's Playwright driver, started once however many launches ask at the same time."""
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if self._playwright is None:
                before = await asyncio.to_thread(_drivers)
                self._playwright = await async_playwright().start()
                started_now = await asyncio.to_thread(_drivers) - before
                self._driver_pid = min(started_now) if len(started_now) == 1 else None
            return self._playwright

    async def _launch_failed(self, exc: BaseException | None) -> None:
        async with self._condition():
            self._launching -= 1
            if exc is not None:
                self._failures += 1
                log.warning("browser launch failed (%d in a row): %s", self._failures, exc)
                if self._failures >= self.settings.launch_failures_to_open:
                    self._open_until = time.monotonic() + self.settings.breaker_open_s
            self._condition().notify_all()

    def _on_disconnected(self, entry: _Browser) -> None:
        if not entry.dead and not self._closed:
            log.warning("a browser disconnected (crashed or killed); it is replaced on the next run")
            self.metrics.recycled.labels("crash").inc()
            self._recycled += 1
        entry.dead = True
        asyncio.get_running_loop().create_task(self._forget(entry))

    async def _forget(self, entry: _Browser) -> None:
        async with self._condition():
            if entry in self._browsers:
                self._browsers.remove(entry)
                self.metrics.browsers.set(len(self._browsers))
            self._condition().notify_all()

    async def _release(self, slot: _Browser, context: BrowserContext | None) -> None:
        if context is not None:
            slot.contexts.discard(context)
            with contextlib.suppress(PlaywrightError):
                await context.close()
        retire = False
        async with self._condition():
            slot.active -= 1
            if slot.active == 0 and (slot.dead or slot.runs >= self.settings.recycle_after_runs):
                retire = slot in self._browsers
                if retire:
                    self._browsers.remove(slot)
                    self._closing += 1
                    self.metrics.browsers.set(len(self._browsers))
            self._condition().notify_all()
        if retire:
            if not slot.dead:
                self.metrics.recycled.labels("runs").inc()
                self._recycled += 1
            slot.dead = True
            try:
                with contextlib.suppress(PlaywrightError):
                    await slot.browser.close()
            finally:
                async with self._condition():
                    self._closing -= 1
                    self._condition().notify_all()


def _drivers() -> set[int]:
    """Playwright driver processes under this process (one per started Playwright)."""
    found = set()
    for child in psutil.Process(os.getpid()).children():
        with contextlib.suppress(psutil.Error):
            if any("playwright" in part for part in child.cmdline()[:2]):
                found.add(child.pid)
    return found
