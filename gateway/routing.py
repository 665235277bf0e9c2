"""The routing policy: which tier serves a request, and why.

``auto`` sends short, simple prompts to turbo and long prompts, tool use and
JSON-schema output to plus; a prompt may declare its tier. A budget whose
action is downgrade (``gateway/budgets``) pushes ``auto``/``plus`` down to
turbo through ``downgrade``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from core.errors import ModelNotFound
from core.settings import LOCAL_ECHO, TIERS, RoutingSettings, Tier

from .catalog import Catalog
from .schemas import ChatRequest


@dataclass(frozen=True, slots=True)
class RouteDecision:
    group: str  # litellm Router model group to call
    tier: Tier | None
    reason: str
    cascade: bool = False  # check the JSON schema and re-ask plus once on failure


def _utf8_upper_bound(request: ChatRequest) -> int:
    """Bytes bound tokens from above (byte-level BPE emits at least one byte a token)."""
    total = 0
    for message in request.messages or ():
        total += 8  # role and framing tokens
        content = message.content
        if isinstance(content, str):
            total += len(content.encode())
        elif content is not None:
            total += sum(len(str(part.get("text", "")).encode()) for part in content)
    return total


class RoutingPolicy:
    def __init__(self, settings: RoutingSettings, catalog: Catalog) -> None:
        self._settings = settings
        self._catalog = catalog

    def decide(
        self,
        request: ChatRequest,
        count_tokens: Callable[[], int],
        prompt_tier: str | None = None,
        downgrade: str | None = None,
    ) -> RouteDecision:
        """Choose the tier; ``downgrade`` is the budget layer's reason to serve plus work with turbo."""
        model = request.model
        if model == "auto":
            decision = self._auto(request, count_tokens, prompt_tier or request.tier_hint)
        elif model in TIERS:
            decision = RouteDecision(group=model, tier=model, reason="explicit_tier")  # type: ignore[arg-type]
        elif model in self._catalog.entries:
            entry = self._catalog.entries[model]
            return RouteDecision(group=model, tier=entry.tier, reason="explicit_model")
        else:
            served = ", ".join(["auto", *TIERS, *sorted(self._catalog.entries)])
            raise ModelNotFound(
                f"model '{model}' is not served here; use one of: {served} (GET /v1/models lists them)",
                param="model",
            )
        if downgrade and decision.tier == "plus":
            return RouteDecision(group="turbo", tier="turbo", reason=downgrade, cascade=False)
        return decision

    def _auto(self, request: ChatRequest, count_tokens: Callable[[], int], hint: str | None) -> RouteDecision:
        settings = self._settings
        if hint in TIERS:
            # A prompt that says turbo and wants JSON-schema output still gets the cascade to plus.
            cascade = hint == "turbo" and request.json_schema is not None and settings.cascade
            return RouteDecision(group=hint, tier=hint, reason=f"prompt_tier_{hint}", cascade=cascade)  # type: ignore[arg-type]
        if request.tools:
            return self._tier(settings.tools_tier, "tools", request)
        if request.json_schema is not None:
            return self._tier(settings.json_schema_tier, "json_schema", request)
        threshold = settings.long_prompt_tokens
        if _utf8_upper_bound(request) >= threshold and count_tokens() >= threshold:
            return RouteDecision(group="plus", tier="plus", reason="long_prompt")
        return RouteDecision(group="turbo", tier="turbo", reason="short_prompt")

    def _tier(self, tier: Tier, reason: str, request: ChatRequest) -> RouteDecision:
        cascade = tier == "turbo" and request.json_schema is not None and self._settings.cascade
        return RouteDecision(group=tier, tier=tier, reason=reason, cascade=cascade)


__all__ = ["LOCAL_ECHO", "RouteDecision", "RoutingPolicy"]
