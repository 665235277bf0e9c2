"""Runs one spec in a pooled, isolated browser context and reports every step.

Per step: its status (``passed``, ``failed``, ``healed``, ``skipped``), how
long it took, the locator tier that hit and, on failure, an error with a
suggestion. Screenshots are taken on failure and on request; a Playwright
trace covers the run (unless the spec has secrets, which a trace would
record). Fingerprints of resolved elements are stored for healing later runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

from playwright.async_api import BrowserContext, Download, Page
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import TimeoutError as PlaywrightTimeout

from core.errors import InvalidRequest
from core.outbound import OutboundPolicy
from core.settings import BrowserSettings

from .fingerprint import DESCRIBE_JS
from .guard import NetworkGuard
from .heal import Healer
from .locators import Resolved, resolve
from .metrics import BrowserMetrics
from .pool import BrowserPool
from .snapshot import inspect_elements, snapshot
from .spec import TIER_RANK, Locator, Spec, Step
from .steps import StepFailed, act, check
from .store import BrowserStore

log = logging.getLogger("aitp.browser.runner")
NEVER_HEALED = frozenset({"expect_visible", "expect_hidden", "expect_text", "expect_value", "expect_count"})
NO_TARGET_CHECKS = frozenset({"expect_url", "expect_title", "expect_hidden", "expect_count"})
DOWNLOAD_GRACE_MS = 1500
SCREENSHOT_MS = 3000  # a page that never finished loading must not hold the failure report up
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(slots=True)
class RunState:
    spec: Spec
    project_id: str
    spec_key: str
    run_dir: Path
    guard: NetworkGuard
    fingerprints: dict[int, dict[str, Any]]
    cached_heals: dict[int, dict[str, Any]]
    healer: Healer
    found: dict[int, tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=dict)
    artifacts: list[str] = field(default_factory=list)
    downloads: list[asyncio.Task[None]] = field(default_factory=list)


class BrowserRunner:
    def __init__(
        self,
        settings: BrowserSettings,
        pool: BrowserPool,
        policy: OutboundPolicy,
        store: BrowserStore,
        metrics: BrowserMetrics,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.policy = policy
        self.store = store
        self.metrics = metrics

    async def run(self, project_id: str, spec: Spec, spec_key: str, run_dir: Path, healer: Healer) -> dict[str, Any]:
        """The run's result; raises PoolSaturated / BrowserUnavailable when no browser can be had."""
        _prepare(run_dir, spec.files)
        state = RunState(
            spec=spec,
            project_id=project_id,
            spec_key=spec_key,
            run_dir=run_dir,
            guard=NetworkGuard(self.policy, self.settings.navigation_timeout_s),
            fingerprints=await self.store.fingerprints(project_id, spec_key),
            cached_heals=await self.store.heals(project_id, spec_key),
            healer=healer,
        )
        queued = time.perf_counter()
        options: dict[str, Any] = {
            "viewport": spec.viewport.model_dump(),
            "locale": spec.locale,
            "accept_downloads": True,
            "service_workers": "block",  # a service worker's requests would bypass the route guard
        }
        if spec.storage_state is not None:
            options["storage_state"] = spec.storage_state
        async with self.pool.lease(options) as context:
            waited = time.perf_counter() - queued
            started = time.perf_counter()
            steps, trace = await self._in_context(context, state)
        failed = sum(1 for s in steps if s["status"] == "failed")
        status = "failed" if failed else "passed"
        self.metrics.runs.labels(status).inc()
        await self.store.save_fingerprints(project_id, spec_key, state.found)
        tiers = {"gold": 0, "silver": 0, "bronze": 0}
        for step in steps:
            if step.get("tier"):
                tiers[step["tier"]] += 1
        return {
            "spec_name": spec.name,
            "spec_key": spec_key,
            "status": status,
            "passed": sum(1 for s in steps if s["status"] == "passed"),
            "failed": failed,
            "healed": sum(1 for s in steps if s["status"] == "healed"),
            "skipped": sum(1 for s in steps if s["status"] == "skipped"),
            "tiers": tiers,
            "tier_drops": sum(1 for s in steps if (s.get("heal") or {}).get("tier_drop")),
            "duration_ms": round((time.perf_counter() - started) * 1000),
            "queue_wait_ms": round(waited * 1000),
            "steps": steps,
            "heals": [{"step": s["index"], **s["heal"]} for s in steps if s.get("heal")],
            "blocked_requests": [
                {**b, "url": spec.mask(b["url"]), "message": spec.mask(b["message"])} for b in state.guard.blocked
            ],
            "artifacts": sorted(state.artifacts),
            "trace": trace,
        }

    @contextlib.asynccontextmanager
    async def open_page(self, url: str) -> AsyncIterator[Page]:
        """A guarded page at ``url`` in a pooled context (for inspecting and planning); a 400 naming the refusal."""
        guard = NetworkGuard(self.policy, self.settings.navigation_timeout_s)
        refused = await guard.verdict(url)
        if refused is not None:
            raise InvalidRequest(f"{refused.message}", param="url", code=refused.code)
        async with self.pool.lease({"service_workers": "block", "locale": "zh-CN"}) as context:
            await guard.attach(context)
            page = await context.new_page()
            try:
                await page.goto(url, timeout=self.settings.navigation_timeout_s * 1000)
            except PlaywrightError as exc:
                raise InvalidRequest(
                    f"{url[:300]} did not open: {exc.message.splitlines()[0][:300]}",
                    param="url",
                    code="page_unavailable",
                ) from None
            yield page

    async def inspect(self, url: str, max_elements: int) -> dict[str, Any]:
        async with self.open_page(url) as page:
            elements = await inspect_elements(page, max_elements)
            return {"url": page.url, "title": await page.title(), "elements": elements}

    async def snapshot(self, url: str) -> dict[str, Any]:
        async with self.open_page(url) as page:
            return await snapshot(page, self.settings.snapshot_elements, self.settings.snapshot_text_chars)

    async def _in_context(self, context: BrowserContext, state: RunState) -> tuple[list[dict[str, Any]], str]:
        await state.guard.attach(context)
        context.set_default_navigation_timeout(self.settings.navigation_timeout_s * 1000)
        tracing = self.settings.trace and not state.spec.secrets
        trace = "trace.zip" if tracing else ("off: the spec has secrets" if state.spec.secrets else "off")
        if tracing:
            await context.tracing.start(screenshots=True, snapshots=True)
        page = await context.new_page()
        page.on("download", lambda d: state.downloads.append(asyncio.ensure_future(self._save_download(d, state))))
        results: list[dict[str, Any]] = []
        deadline = time.perf_counter() + self.settings.run_timeout_s
        failed = False
        for index, step in enumerate(state.spec.steps):
            if failed or time.perf_counter() > deadline:
                results.append(_skipped(index, step, "an earlier step failed" if failed else "the run's time ran out"))
                continue
            result = await self._step(page, index, step, state)
            failed = result["status"] == "failed"
            results.append(result)
        if results[-1]["status"] != "failed" and results[-1]["action"] in ("click", "press") and not state.downloads:
            # A run that ends with a click may have started a download the browser has not announced yet.
            with contextlib.suppress(PlaywrightError):
                await page.wait_for_event("download", timeout=DOWNLOAD_GRACE_MS)
            await asyncio.sleep(0)
        for task in state.downloads:
            with contextlib.suppress(Exception):
                await task
        if tracing:
            try:
                await context.tracing.stop(path=state.run_dir / "trace.zip")
                state.artifacts.append("trace.zip")
            except PlaywrightError as exc:
                trace = f"lost: {exc.message[:200]}"
        return results, trace

    async def _step(self, page: Page, index: int, step: Step, state: RunState) -> dict[str, Any]:
        started = time.perf_counter()
        spec = state.spec
        out: dict[str, Any] = {"index": index, "action": step.action, "description": spec.mask(step.description)}
        if step.value is not None:
            out["value"] = spec.mask(spec.substitute(step.value))
        try:
            await self._perform(page, index, step, state, out)
            out["status"] = "healed" if out.get("heal") else "passed"
            out["error"] = None
        except StepFailed as exc:
            out |= {
                "status": "failed",
                "error": {"code": exc.code, "message": spec.mask(exc.message), "suggestion": exc.suggestion},
            }
        except PlaywrightTimeout as exc:
            out |= {"status": "failed", "error": _timeout_error(step, spec.mask(exc.message))}
        except PlaywrightError as exc:
            out |= {"status": "failed", "error": self._browser_error(step, spec.mask(exc.message), state)}
        out["duration_ms"] = round((time.perf_counter() - started) * 1000)
        if out["status"] == "failed" or step.screenshot or step.action == "screenshot":
            name = f"step-{index:02d}-{'failed' if out['status'] == 'failed' else 'shot'}.png"
            with contextlib.suppress(PlaywrightError):
                await page.screenshot(
                    path=state.run_dir / name, full_page=step.action == "screenshot", timeout=SCREENSHOT_MS
                )
                state.artifacts.append(name)
                out["screenshot"] = name
        return out

    async def _perform(self, page: Page, index: int, step: Step, state: RunState, out: dict[str, Any]) -> None:
        budget = step.timeout_s or self.settings.step_budget_s
        if step.action == "goto":
            await self._goto(page, step, state)
            return
        if step.action == "screenshot":
            return
        if step.action in ("expect_url", "expect_title") or (step.action == "press" and not step.target):
            if step.action == "press":
                await page.keyboard.press(state.spec.substitute(step.value or ""))
                return
            await check(page, step, None, state.spec, budget)
            return
        if step.action in NO_TARGET_CHECKS:
            await check(page, step, None, state.spec, budget)
            out["tier"] = step.target[0].tier
            return
        started = time.perf_counter()
        resolved = await self._resolve(page, index, step, state, budget, out)
        out["tier"] = resolved.tier
        out["locator"] = resolved.locator.plain()
        out["resolve_ms"] = round(resolved.seconds * 1000)
        if resolved.matches > 1:
            out["warning"] = f"{resolved.matches} elements match; the first was used (make the locator unique)"
        # The fingerprint is taken before the action, which may navigate away; it is stored if the step passes.
        fingerprint: dict[str, Any] | None = None
        with contextlib.suppress(PlaywrightError):
            fingerprint = await resolved.element.evaluate(DESCRIBE_JS, timeout=1000)
        remaining = max(0.5, budget - (time.perf_counter() - started))
        if step.action in NEVER_HEALED:
            await check(page, step, resolved.element, state.spec, remaining)
        else:
            await act(page, step, resolved.element, state.spec, state.run_dir / "files", max(remaining, 5.0))
        if fingerprint is not None:
            state.found[index] = (resolved.locator.plain(), fingerprint)

    async def _resolve(
        self, page: Page, index: int, step: Step, state: RunState, budget: float, out: dict[str, Any]
    ) -> Resolved:
        cached = state.cached_heals.get(index) if step.action not in NEVER_HEALED else None
        extra = Locator.model_validate(cached["new_locator"]) if cached else None
        resolved = await resolve(page, step.target, budget, extra)
        if resolved is not None and resolved.index >= 0:
            self.metrics.resolutions.labels(resolved.tier, "hit").inc()
            return resolved
        if resolved is not None and cached is not None:  # the cached heal found it; the spec's locators did not
            out["heal"] = {**{k: cached[k] for k in ("old_locator", "new_locator", "confidence", "evidence")}}
            out["heal"] |= {"old_tier": step.target[0].tier, "new_tier": resolved.tier, "source": "cache"}
            out["heal"]["tier_drop"] = TIER_RANK[resolved.tier] > TIER_RANK[step.target[0].tier]
            self.metrics.resolutions.labels(resolved.tier, "healed").inc()
            self.metrics.heals.labels("cached").inc()
            return resolved
        self.metrics.resolutions.labels(step.target[0].tier, "miss").inc()
        tried = ", ".join(loc.describe() for loc in step.target)
        if step.action in NEVER_HEALED:
            raise StepFailed(
                f"no element matches {tried} within {budget:.1f} s",
                "the element the check is about is missing; if the page changed on purpose, fix the locator "
                "(inspect_page lists the page's elements with their best locators); checks are never healed",
                "target_not_found",
            )
        fixed, why = await state.healer.heal(page, step, state.fingerprints.get(index))
        if fixed is None:
            self.metrics.heals.labels("no_match").inc()
            raise StepFailed(
                f"no element matches {tried} within {budget:.1f} s, and healing found none ({why})",
                "fix the locator (inspect_page lists the page's elements with their best locators), or raise "
                "the step's timeout_s if the element arrives late",
                "target_not_found",
            )
        new = Locator.model_validate(fixed["new_locator"])
        healed = await resolve(page, [new], 0.5)
        if healed is None:
            raise StepFailed(f"the healed locator {new.describe()} no longer finds its element", "fix the locator")
        self.metrics.heals.labels("healed").inc()
        if fixed["tier_drop"]:
            self.metrics.heals.labels("tier_drop").inc()
        self.metrics.resolutions.labels(healed.tier, "healed").inc()
        out["heal"] = {**fixed, "source": fixed["evidence"].get("method", "fingerprint")}
        await self.store.save_heal(state.project_id, state.spec_key, index, fixed)
        return healed

    async def _goto(self, page: Page, step: Step, state: RunState) -> None:
        url = urljoin(state.spec.base_url or "", state.spec.substitute(step.url or ""))
        refused = await state.guard.verdict(url)
        if refused is not None:
            raise StepFailed(
                f"navigation to {state.spec.mask(url)[:300]} refused: {refused.message}", _POLICY_FIX, refused.code
            )
        await page.goto(url, timeout=(step.timeout_s or self.settings.navigation_timeout_s) * 1000)

    def _browser_error(self, step: Step, message: str, state: RunState) -> dict[str, str]:
        if "ERR_BLOCKED_BY_CLIENT" in message and state.guard.blocked:
            last = state.guard.blocked[-1]
            return {
                "code": last["code"],
                "message": f"refused by the URL policy: {last['message']}",
                "suggestion": _POLICY_FIX,
            }
        if "closed" in message or "crash" in message.lower():
            return {
                "code": "browser_crashed",
                "message": message[:500],
                "suggestion": "run it again; the browser is replaced",
            }
        return {
            "code": "browser_error",
            "message": message[:500],
            "suggestion": f"check the '{step.action}' step's arguments",
        }

    async def _save_download(self, download: Download, state: RunState) -> None:
        directory = state.run_dir / "downloads"
        directory.mkdir(exist_ok=True)
        name = _SAFE_NAME.sub("_", download.suggested_filename)[:100].lstrip(".") or "download"
        target = directory / name
        await download.save_as(target)
        if target.stat().st_size > self.settings.max_download_bytes:
            target.unlink()
            log.warning("download %s dropped: larger than browser.max_download_bytes", name)
            return
        state.artifacts.append(f"downloads/{name}")


_POLICY_FIX = "add the host to outbound.allowed_hosts (or set outbound.allow_loopback for local test servers)"


def _timeout_error(step: Step, message: str) -> dict[str, str]:
    if step.action == "goto":
        return {
            "code": "navigation_timeout",
            "message": f"the page did not load in time: {message.splitlines()[0][:300]}",
            "suggestion": "check that the site is up, or raise the step's timeout_s / browser.navigation_timeout_s",
        }
    return {
        "code": "timeout",
        "message": message.splitlines()[0][:300],
        "suggestion": "the element was found but did not become ready for the action (hidden, disabled or covered)",
    }


def _prepare(run_dir: Path, files: dict[str, str]) -> None:
    (run_dir / "files").mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (run_dir / "files" / name).write_text(content, encoding="utf-8")


def _skipped(index: int, step: Step, why: str) -> dict[str, Any]:
    return {
        "index": index,
        "action": step.action,
        "status": "skipped",
        "duration_ms": 0,
        "tier": None,
        "error": None,
        "reason": why,
    }
