"""Healing a step whose locators found nothing: fingerprint scoring first, then the model.

Only locators are healed, never assertions (the runner does not call this for
``expect_*`` steps). A heal is used only when it is unambiguous: fingerprint
scoring needs the best candidate above the threshold and clearly above the
second; the model's answer must find exactly one element. The result carries
the structured fix ``{old_locator, old_tier, new_locator, new_tier,
confidence, evidence}``; the stored spec changes only when someone accepts it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from playwright.async_api import ElementHandle, Page
from pydantic import ValidationError

from .fingerprint import DESCRIBE_JS, best_match, locator_candidates
from .locators import count, to_playwright, unique
from .snapshot import describe_page, snapshot
from .spec import TIER_RANK, Locator, Step

log = logging.getLogger("aitp.browser.heal")

# (snapshot, {step, old_locator, fingerprint}) -> {"locator": {...}, "confidence": float, "reason": str} or None.
AskModel = Callable[[dict[str, Any], dict[str, Any]], Awaitable[dict[str, Any] | None]]
CANDIDATE_LIMIT = 300


@dataclass(frozen=True, slots=True)
class HealSettings:
    threshold: float
    margin: float
    snapshot_elements: int
    snapshot_text_chars: int


def fix(old: Locator, new: Locator, confidence: float, evidence: dict[str, Any]) -> dict[str, Any]:
    """The suggested fix as results and the heals cache hold it."""
    return {
        "old_locator": old.plain(),
        "old_tier": old.tier,
        "new_locator": new.plain(),
        "new_tier": new.tier,
        "confidence": round(confidence, 3),
        "evidence": evidence,
        "tier_drop": TIER_RANK[new.tier] > TIER_RANK[old.tier],
    }


async def fingerprint_of(element: ElementHandle) -> dict[str, Any]:
    found: dict[str, Any] = await element.evaluate(DESCRIBE_JS)
    return found


class Healer:
    def __init__(self, settings: HealSettings, ask_model: AskModel | None) -> None:
        self.settings = settings
        self.ask_model = ask_model

    async def heal(self, page: Page, step: Step, stored: dict[str, Any] | None) -> tuple[dict[str, Any] | None, str]:
        """A fix for ``step`` on this page, or None and why there is none."""
        old = step.target[0]
        reasons = []
        if stored is not None:
            found, why = await self._by_fingerprint(page, old, stored["fingerprint"])
            if found is not None:
                return found, ""
            reasons.append(why)
        else:
            reasons.append("no fingerprint of this step yet (it never passed)")
        if self.ask_model is None:
            return None, "; ".join(reasons)
        found, why = await self._by_model(page, step, stored)
        if found is not None:
            return found, ""
        reasons.append(why)
        return None, "; ".join(reasons)

    async def _by_fingerprint(
        self, page: Page, old: Locator, stored: dict[str, Any]
    ) -> tuple[dict[str, Any] | None, str]:
        candidates = await describe_page(page, CANDIDATE_LIMIT)
        match, why = best_match(stored, candidates, self.settings.threshold, self.settings.margin)
        if match is None:
            return None, f"fingerprint: {why}"
        new = await unique(page, locator_candidates(match.candidate))
        if new is None:
            return None, "fingerprint: the matching element has no locator that finds it alone"
        return fix(old, new, match.score, match.evidence), ""

    async def _by_model(
        self, page: Page, step: Step, stored: dict[str, Any] | None
    ) -> tuple[dict[str, Any] | None, str]:
        assert self.ask_model is not None
        snap = await snapshot(page, self.settings.snapshot_elements, self.settings.snapshot_text_chars)
        question = {
            "step": step.model_dump(mode="json", exclude_none=True, exclude={"value"}),
            "old_locator": step.target[0].plain(),
            "fingerprint": (stored or {}).get("fingerprint") or {},
        }
        answer = await self.ask_model(snap, question)
        if not answer or not answer.get("locator"):
            return None, "model: it found no element that fits"
        try:
            new = Locator.model_validate(answer["locator"])
        except ValidationError as exc:
            return None, f"model: its locator is not valid ({exc.errors()[0]['msg']})"
        matches = await count(page, new)
        if matches != 1:
            return None, f"model: its locator {new.describe()} finds {matches} elements, not exactly one"
        confidence = float(answer.get("confidence") or 0.0)
        if confidence < self.settings.threshold:
            return None, f"model: its confidence {confidence:.2f} is below the threshold {self.settings.threshold:.2f}"
        handle = await to_playwright(page, new).element_handle(timeout=1000)
        evidence: dict[str, Any] = {"method": "model", "reason": str(answer.get("reason") or "")[:500]}
        if handle is not None:
            evidence["element"] = {
                k: v for k, v in (await fingerprint_of(handle)).items() if k in ("tag", "role", "name", "testid")
            }
        return fix(step.target[0], new, confidence, evidence), ""
