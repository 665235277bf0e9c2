"""Tiered resolution: a step's alternatives polled together within the step's time budget.

Each poll asks every alternative (in the spec's order) how many elements it
finds now; the first that finds any wins, and its tier is recorded. Polling
all of them at once means late content is waited for without a slow gold
locator using up the silver one's time.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, cast

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Locator as PWLocator
from playwright.async_api import Page

from .spec import Locator, Tier

POLL_S = 0.1


def to_playwright(page: Page, loc: Locator) -> PWLocator:
    exact = loc.exact
    match loc.strategy:
        case "testid":
            return page.get_by_test_id(loc.value)
        case "role":
            return page.get_by_role(cast(Any, loc.role), name=loc.name or None, exact=exact if loc.name else None)
        case "label":
            return page.get_by_label(loc.value, exact=exact)
        case "placeholder":
            return page.get_by_placeholder(loc.value, exact=exact)
        case "text":
            return page.get_by_text(loc.value, exact=exact)
        case "css":
            return page.locator(loc.value)
        case _:
            return page.locator(f"xpath={loc.value}")


@dataclass(slots=True)
class Resolved:
    locator: Locator
    element: PWLocator
    tier: Tier
    matches: int
    index: int  # which alternative hit; -1: an extra candidate (a cached heal)
    seconds: float


async def count(page: Page, loc: Locator) -> int:
    try:
        return await to_playwright(page, loc).count()
    except PlaywrightError:
        return 0  # an invalid selector finds nothing; the step reports it


async def resolve(
    page: Page, alternatives: list[Locator], budget_s: float, extra: Locator | None = None
) -> Resolved | None:
    """The first alternative that finds an element within ``budget_s``; ``extra`` is tried after them."""
    started = time.perf_counter()
    deadline = started + budget_s
    tried = [*alternatives, *([extra] if extra is not None else [])]
    while True:
        for index, loc in enumerate(tried):
            found = await count(page, loc)
            if found:
                element = to_playwright(page, loc).first
                hit = index if index < len(alternatives) else -1
                return Resolved(loc, element, loc.tier, found, hit, time.perf_counter() - started)
        if time.perf_counter() >= deadline:
            return None
        await asyncio.sleep(min(POLL_S, max(0.0, deadline - time.perf_counter())))


async def unique(page: Page, candidates: list[dict[str, Any]]) -> Locator | None:
    """The first candidate locator that finds exactly one element."""
    for data in candidates:
        loc = Locator.model_validate(data)
        if await count(page, loc) == 1:
            return loc
    return None
