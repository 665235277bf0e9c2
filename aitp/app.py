"""The app factory: wires settings, database, gateway and health routes into one Starlette app."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.db import create_engine, migrate
from core.errors import APIError
from core.http import (
    JSONResponse,
    RequestContextMiddleware,
    handle_api_error,
    handle_http_exception,
    handle_unexpected,
)
from core.settings import Settings
from gateway.catalog import build_catalog
from gateway.chat import ChatService, EngineRef
from gateway.embeddings import EmbeddingService
from gateway.engine import load_engine
from gateway.metrics import GatewayMetrics
from gateway.routes import Gateway
from gateway.routes import routes as gateway_routes
from gateway.routing import RoutingPolicy
from gateway.usage import UsageRecorder

log = logging.getLogger("aitp.app")


@dataclass(slots=True)
class State:
    settings: Settings
    registry: CollectorRegistry
    engine_ref: EngineRef
    db_ready: bool = False


def create_app(settings: Settings) -> Starlette:
    registry = CollectorRegistry()
    metrics = GatewayMetrics(registry)
    catalog = build_catalog(settings, os.environ)
    db = create_engine(settings.effective_database_url)
    recorder = UsageRecorder(db, settings.usage)
    engine_ref = EngineRef()
    state = State(settings=settings, registry=registry, engine_ref=engine_ref)
    gateway = Gateway(
        catalog=catalog,
        chat=ChatService(engine_ref, RoutingPolicy(settings.routing, catalog), recorder, metrics),
        embeddings=EmbeddingService(engine_ref, catalog, recorder),
        created=int(time.time()),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # litellm loads in a thread while migrations run and the server starts accepting requests.
        loading = asyncio.get_running_loop().run_in_executor(None, load_engine, catalog, settings.retries)
        loading.add_done_callback(engine_ref.resolve)
        await migrate(db)
        state.db_ready = True
        await recorder.start()
        if catalog.disabled:
            log.warning("deployments disabled: %s", catalog.disabled)
        try:
            yield
        finally:
            await recorder.stop()
            await db.dispose()

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        checks: dict[str, str] = {}
        try:
            async with db.connect() as conn:
                await conn.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"error: {type(exc).__name__}"
        checks["llm_engine"] = "ok" if engine_ref.ready else "loading"
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ok" if ok else "not_ready", "checks": checks}, status_code=200 if ok else 503)

    async def metrics_endpoint(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
            *gateway_routes(gateway),
        ],
        middleware=[Middleware(RequestContextMiddleware, max_body_bytes=settings.server.max_body_bytes)],
        exception_handlers={
            APIError: handle_api_error,
            HTTPException: handle_http_exception,
            Exception: handle_unexpected,
        },
        lifespan=lifespan,
    )
    app.state.aitp = state
    return app
