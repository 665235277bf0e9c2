"""The run's network guard: every request of the browser context passes core/outbound.py's policy.

Playwright shows route handlers neither redirects nor the requests a
fulfilled redirect leads to, so each request is fetched here with redirects
off. A redirect's chain is walked hop by hop (each hop checked) before the
browser is handed the first answer; a refused hop aborts the request and is
recorded in the run's result. The browser then follows the checked chain
itself, so a redirecting URL is requested twice and a server that answers
the second time differently is not caught; an egress proxy closes that gap.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any
from urllib.parse import urljoin

from playwright.async_api import BrowserContext, Route
from playwright.async_api import Error as PlaywrightError

from core.outbound import OutboundPolicy, UrlRefused

log = logging.getLogger("aitp.browser.guard")
_MAX_BLOCKED = 50
MAX_REDIRECTS = 5


class NetworkGuard:
    def __init__(self, policy: OutboundPolicy, timeout_s: float) -> None:
        self.policy = policy
        self.timeout_s = timeout_s
        self.blocked: list[dict[str, Any]] = []
        self._verdicts: dict[str, UrlRefused | None] = {}

    async def attach(self, context: BrowserContext) -> None:
        await context.route("**/*", self._handle)

    async def verdict(self, url: str) -> UrlRefused | None:
        """None when ``url`` may be opened, else the refusal (cached per origin for the run)."""
        try:
            self.policy.check_url(url)
        except UrlRefused as exc:
            return exc
        origin = url.split("/", 3)[:3]
        key = "/".join(origin)
        if key not in self._verdicts:
            try:
                await self.policy.check_resolved(url)
                self._verdicts[key] = None
            except UrlRefused as exc:
                self._verdicts[key] = exc
        return self._verdicts[key]

    async def _handle(self, route: Route) -> None:
        try:
            await self._decide(route)
        except PlaywrightError:
            # The fetch failed (connection refused, timeout) or the page closed meanwhile: the request fails.
            with contextlib.suppress(PlaywrightError):
                await route.abort("failed")

    async def _decide(self, route: Route) -> None:
        request = route.request
        refused = await self.verdict(request.url)
        if refused is not None:
            self._record(request.url, refused)
            await route.abort("blockedbyclient")
            return
        response = await route.fetch(max_redirects=0, timeout=self.timeout_s * 1000)
        location = response.headers.get("location")
        if 300 <= response.status < 400 and location:
            hop = await self._walk(route, response.status, urljoin(request.url, location))
            if hop is not None:
                self._record(*hop)
                await route.abort("blockedbyclient")
                return
        await route.fulfill(response=response)

    async def _walk(self, route: Route, status: int, url: str) -> tuple[str, UrlRefused] | None:
        """The first hop of a redirect chain the policy refuses, as (url, refusal); None when all pass."""
        for _ in range(MAX_REDIRECTS):
            refused = await self.verdict(url)
            if refused is not None:
                return url, refused
            method = None if status in (307, 308) else "GET"
            hop = await route.fetch(url=url, method=method, max_redirects=0, timeout=self.timeout_s * 1000)
            location = hop.headers.get("location")
            if not (300 <= hop.status < 400 and location):
                return None
            status, url = hop.status, urljoin(url, location)
        return url, UrlRefused("url_too_many_redirects", f"more than {MAX_REDIRECTS} redirects; give the final URL")

    def _record(self, url: str, refused: UrlRefused) -> None:
        if len(self.blocked) < _MAX_BLOCKED:
            self.blocked.append({"url": url[:300], "code": refused.code, "message": refused.message})
        log.info("blocked %s: %s", url[:200], refused.code)
