"""One step against the page: its action or its check, each with an error that says what to do.

Assertions compare what the page shows with what the spec expects and fail
when they differ; they are never healed, because a test must fail when the
product's behaviour changed.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Locator as PWLocator
from playwright.async_api import Page

from .locators import count, to_playwright
from .spec import Spec, Step


class StepFailed(Exception):
    def __init__(self, message: str, suggestion: str, code: str = "step_failed") -> None:
        super().__init__(message)
        self.message = message
        self.suggestion = suggestion
        self.code = code


ASSERTION_CHANGED = (
    "the page's behaviour differs from the spec; if the change is intended, update the expected value in the "
    "spec (aitp never heals an assertion)"
)


async def _poll(check: Callable[[], Awaitable[bool]], seconds: float) -> bool:
    deadline = time.perf_counter() + seconds
    while True:
        if await check():
            return True
        if time.perf_counter() >= deadline:
            return False
        await asyncio.sleep(0.1)


async def act(page: Page, step: Step, element: PWLocator, spec: Spec, files_dir: Path, timeout_s: float) -> None:
    """Carry out an action step on its resolved element."""
    ms = timeout_s * 1000
    value = spec.substitute(step.value or "")
    match step.action:
        case "click":
            await element.click(timeout=ms)
        case "fill":
            await element.fill(value, timeout=ms)
        case "select":
            try:
                await element.select_option(value, timeout=ms)
            except PlaywrightError:
                await element.select_option(label=value, timeout=ms)
        case "press":
            await element.press(value, timeout=ms)
        case "hover":
            await element.hover(timeout=ms)
        case "check":
            await element.check(timeout=ms)
        case "uncheck":
            await element.uncheck(timeout=ms)
        case "scroll_into_view":
            await element.scroll_into_view_if_needed(timeout=ms)
        case "upload":
            path = _upload_path(files_dir, value)
            if path is None:
                raise StepFailed(
                    f"upload: '{value}' is not one of the spec's files",
                    "name a file given in the spec's 'files' (uploads come only from the run's directory)",
                    "upload_refused",
                )
            await element.set_input_files(path, timeout=ms)
        case "wait_for":
            await element.wait_for(state=step.state, timeout=ms)
        case _:
            raise AssertionError(step.action)


async def check(page: Page, step: Step, element: PWLocator | None, spec: Spec, seconds: float) -> None:
    """An expect_* step: wait up to ``seconds`` for the page to agree, else StepFailed saying what differs."""
    expected = spec.substitute(step.value or "")
    shown = spec.mask(expected)
    if step.action == "expect_hidden":
        target = to_playwright(page, step.target[0])

        async def hidden() -> bool:
            return await count(page, step.target[0]) == 0 or not await target.first.is_visible()

        if not await _poll(hidden, seconds):
            raise StepFailed(f"{step.target[0].describe()} is still visible", ASSERTION_CHANGED, "assertion_failed")
        return
    if step.action == "expect_url":
        if not await _poll(lambda: _bool(_url_matches(page.url, expected)), seconds):
            raise StepFailed(f"the URL is {page.url}, expected {shown}", ASSERTION_CHANGED, "assertion_failed")
        return
    if step.action == "expect_title":

        async def titled() -> bool:
            return expected in await page.title()

        if not await _poll(titled, seconds):
            raise StepFailed(
                f"the title is {await page.title()!r}, expected {shown!r}", ASSERTION_CHANGED, "assertion_failed"
            )
        return
    if step.action == "expect_count":
        target = to_playwright(page, step.target[0])

        async def counted() -> bool:
            return await target.count() == step.count

        if not await _poll(counted, seconds):
            raise StepFailed(
                f"{step.target[0].describe()} finds {await target.count()} elements, expected {step.count}",
                ASSERTION_CHANGED,
                "assertion_failed",
            )
        return
    assert element is not None
    if step.action == "expect_visible":
        if not await _poll(element.is_visible, seconds):
            raise StepFailed("the target is in the page but not visible", ASSERTION_CHANGED, "assertion_failed")
        return
    if step.action == "expect_text":

        async def has_text() -> bool:
            return _normal(expected) in _normal(await element.inner_text())

        if not await _poll(has_text, seconds):
            actual = spec.mask(_normal(await element.inner_text()))[:200]
            raise StepFailed(
                f"the target's text is {actual!r}, expected {shown!r}", ASSERTION_CHANGED, "assertion_failed"
            )
        return
    if step.action == "expect_value":

        async def has_value() -> bool:
            return await element.input_value() == expected

        if not await _poll(has_value, seconds):
            actual = spec.mask(await element.input_value())[:200]
            raise StepFailed(
                f"the target's value is {actual!r}, expected {shown!r}", ASSERTION_CHANGED, "assertion_failed"
            )
        return
    raise AssertionError(step.action)


def _upload_path(files_dir: Path, name: str) -> Path | None:
    """The spec's file ``name`` inside the run's directory, or None (never a path outside it)."""
    path = (files_dir / name).resolve()
    return path if path.parent == files_dir.resolve() and path.is_file() else None


async def _bool(value: bool) -> bool:
    return value


def _normal(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _url_matches(url: str, expected: str) -> bool:
    """Exact URL, a path (``/done``), or a fragment the URL contains."""
    if expected.startswith("/"):
        path = re.sub(r"^[a-z]+://[^/]+", "", url)
        return path == expected or path.split("?", 1)[0] == expected
    return url == expected or expected in url
