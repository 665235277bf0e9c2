"""The OpenAI-compatible HTTP surface: /v1/chat/completions, /v1/embeddings, /v1/models."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.http import JSONResponse, read_json, request_id
from core.identity.middleware import principal_of
from core.settings import TIERS

from .catalog import Catalog
from .chat import CallContext, ChatService
from .embeddings import EmbeddingService


@dataclass(slots=True)
class Gateway:
    catalog: Catalog
    chat: ChatService
    embeddings: EmbeddingService
    created: int


def _context(request: Request) -> CallContext:
    # Latency counts from the route: the key was looked up by the middleware in front of it.
    return CallContext(request_id=request_id(request), started=time.perf_counter(), principal=principal_of(request))


def _model_cards(gateway: Gateway) -> list[dict[str, Any]]:
    catalog = gateway.catalog
    cards: list[dict[str, Any]] = []

    def card(model_id: str, owned_by: str, **extra: Any) -> None:
        cards.append({"id": model_id, "object": "model", "created": gateway.created, "owned_by": owned_by, **extra})

    card("auto", "aitp", description="routing policy: turbo for short, simple prompts; plus for complex ones")
    for tier in TIERS:
        names = catalog.tiers.get(tier, [])
        echo = catalog.tier_is_echo(tier)
        card(
            tier,
            "aitp",
            description=f"{tier} tier" + (" (served by the local/echo stand-in: no provider key)" if echo else ""),
            deployments=[catalog.entries[n].label for n in names],
        )
    for entry in catalog.entries.values():
        if entry.is_echo:
            card(entry.name, "aitp-local", description="built-in echo stand-in, not an LLM; configure a provider")
        else:
            card(entry.name, entry.model.split("/", 1)[0], tier=entry.tier, model=entry.model)
    return cards


def routes(gateway: Gateway) -> list[Route]:
    async def chat_completions(request: Request) -> Response:
        ctx = _context(request)
        return await gateway.chat.handle(await read_json(request), ctx)

    async def embeddings(request: Request) -> Response:
        ctx = _context(request)
        return await gateway.embeddings.handle(await read_json(request), ctx)

    async def models(request: Request) -> Response:
        principal = principal_of(request)
        cards = _model_cards(gateway)
        if principal.allowed_models is not None:
            cards = [c for c in cards if c["id"] in principal.allowed_models]
        return JSONResponse({"object": "list", "data": cards})

    return [
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/embeddings", embeddings, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
    ]
