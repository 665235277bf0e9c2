"""The run's network guard: every request of the browser context passes core/outbound.py's policy.

Playwright does not show redirects to route handlers, so navigations are
fetched here with redirects off and handed to the page as they came: the
browser then requests the ``Location`` itself, and that request is checked
like the first. Sub-requests (scripts, images, fetch/XHR) are checked and
continued; a refused one is aborted and recorded in the run's result.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from playwright.async_api import BrowserContext, Route
from playwright.async_api import Error as PlaywrightError

from core.outbound import OutboundPolicy, UrlRefused

log = logging.getLogger("aitp.browser.guard")
_MAX_BLOCKED = 50


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
        request = route.request
        refused = await self.verdict(request.url)
        with contextlib.suppress(PlaywrightError):  # the page or context may close while a request is in flight
            if refused is not None:
                if len(self.blocked) < _MAX_BLOCKED:
                    self.blocked.append({"url": request.url[:300], "code": refused.code, "message": refused.message})
                log.info("blocked %s: %s", request.url[:200], refused.code)
                await route.abort("blockedbyclient")
                return
            if request.is_navigation_request():
                response = await route.fetch(max_redirects=0, timeout=self.timeout_s * 1000)
                await route.fulfill(response=response)
                return
            await route.continue_()
