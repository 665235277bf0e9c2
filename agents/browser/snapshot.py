"""What a page offers, in few tokens: the capped accessibility snapshot the model reads, and inspect_page.

Both list the visible interactive elements in document order with their
test id, role, accessible name, label, placeholder, text and a CSS fallback;
:func:`inspect_elements` adds the best locator that finds exactly that one
element, and its tier.
"""

from __future__ import annotations

from typing import Any

from playwright.async_api import Page

from .fingerprint import CANDIDATES_JS, locator_candidates
from .locators import unique

_KEYS = ("testid", "role", "name", "label", "placeholder", "text")


async def describe_page(page: Page, limit: int) -> list[dict[str, Any]]:
    """Fingerprints of the visible interactive elements, at most ``limit``."""
    found: list[dict[str, Any]] = await page.evaluate(CANDIDATES_JS, limit)
    return found


def _css(fp: dict[str, Any]) -> str:
    return f"#{fp['id']}" if fp.get("id") else str(fp.get("path") or "")


async def snapshot(page: Page, max_elements: int, text_chars: int) -> dict[str, Any]:
    """``{url, title, elements, text}`` as the ``browser.plan`` and ``browser.heal`` prompts take it."""
    elements = []
    for fp in await describe_page(page, max_elements):
        entry = {k: fp[k] for k in _KEYS if fp.get(k)}
        entry["css"] = _css(fp)
        if fp.get("disabled"):
            entry["disabled"] = True
        elements.append(entry)
    text = ""
    if text_chars:
        text = " ".join((await page.evaluate("() => document.body ? document.body.innerText : ''")).split())
    return {"url": page.url, "title": await page.title(), "elements": elements, "text": text[:text_chars]}


async def inspect_elements(page: Page, max_elements: int) -> list[dict[str, Any]]:
    """Each visible interactive element with the best locator that finds only it, and that locator's tier."""
    out = []
    for fp in await describe_page(page, max_elements):
        best = await unique(page, locator_candidates(fp))
        entry: dict[str, Any] = {k: fp[k] for k in ("tag", *_KEYS) if fp.get(k)}
        if best is None:
            entry |= {"locator": None, "tier": None, "note": "no locator finds this element alone"}
        else:
            entry |= {"locator": best.plain(), "tier": best.tier}
        out.append(entry)
    return out
