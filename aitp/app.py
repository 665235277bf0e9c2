"""The app factory: wires settings, database, gateway and health routes into one Starlette app."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import random
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agents import TaskRuntime, task_routes
from core.db import create_engine, migrate
from core.errors import APIError
from core.http import (
    JSONResponse,
    RequestContextMiddleware,
    handle_api_error,
    handle_database_error,
    handle_http_exception,
    handle_unexpected,
)
from core.identity.audit import AuditLog
from core.identity.keys import KeyStore
from core.identity.projects import ProjectStore
from core.identity.routes import Identity, identity_routes
from core.redis import create_redis
from core.settings import Settings
from gateway.budgets.alerts import AlertSink
from gateway.budgets.enforcer import BudgetEnforcer
from gateway.budgets.routes import budget_routes
from gateway.budgets.store import BudgetStore
from gateway.catalog import build_catalog
from gateway.chat import ChatService, EngineRef
from gateway.embeddings import EmbeddingService
from gateway.engine import load_engine
from gateway.ledger import create_ledger
from gateway.metrics import GatewayMetrics
from gateway.pricing import Price
from gateway.prompts import PromptFileError, PromptRegistry, default_directory, load_directory, prompt_routes
from gateway.prompts.loader import audit_changes
from gateway.reports import report_routes
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


def resolve_admin_key(settings: Settings) -> str:
    """The admin key; in --dev mode without AITP_ADMIN_KEY one is generated once and kept in data_dir."""
    if settings.admin_key is not None:
        return settings.admin_key.get_secret_value()
    path = settings.data_dir / "dev-admin-key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("sk-aitp-dev-" + secrets.token_urlsafe(32) + "\n")
        path.chmod(0o600)
    log.warning("--dev mode: the admin key is in %s (set AITP_ADMIN_KEY to choose one)", path)
    return path.read_text().strip()


def create_app(settings: Settings) -> Starlette:
    registry = CollectorRegistry()
    metrics = GatewayMetrics(registry)
    catalog = build_catalog(settings, os.environ)
    db = create_engine(settings.effective_database_url, settings.database_pool_size, settings.database_max_overflow)
    # Generous waits: under overload a request should queue for a connection, not fail.
    redis_client = (
        create_redis(settings.redis_url, settings.redis_max_connections, socket_timeout_s=5.0, pool_timeout_s=10.0)
        if settings.redis_url
        else None
    )
    ledger = create_ledger(
        database=db, redis_client=redis_client, prefix=settings.redis_prefix, tz=settings.budgets.timezone
    )
    recorder = UsageRecorder(db, settings.usage)
    tasks = TaskRuntime(settings, db, registry)
    engine_ref = EngineRef()
    state = State(settings=settings, registry=registry, engine_ref=engine_ref)
    identity = Identity(keys=KeyStore(db, resolve_admin_key(settings)), projects=ProjectStore(db), audit=AuditLog(db))
    budget_store = BudgetStore(db, settings.budgets.timezone)
    alerts = AlertSink(db, registry, settings.budgets.alert_webhook_url, settings.budgets.webhook_attempts)
    enforcer = BudgetEnforcer(budget_store, ledger, alerts, settings.budgets, registry)
    prompts = PromptRegistry(
        db, rng=random.Random(settings.prompts.random_seed), cache_size=settings.prompts.cache_versions
    )
    gateway = Gateway(
        catalog=catalog,
        chat=ChatService(engine_ref, RoutingPolicy(settings.routing, catalog), recorder, metrics, enforcer, prompts),
        embeddings=EmbeddingService(engine_ref, catalog, recorder, enforcer, metrics),
        authenticate=identity.principal,
        created=int(time.time()),
    )

    def plus_price() -> Price:
        return engine_ref.current().tier_price("plus")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # litellm loads in a thread while migrations run and the server starts accepting requests.
        loading = asyncio.get_running_loop().run_in_executor(None, load_engine, catalog, settings.retries)
        loading.add_done_callback(engine_ref.resolve)
        # litellm leaves ~400k long-lived objects; a full collection over them stalls every request for
        # ~200 ms (the p99 of task submits). Frozen, the collector skips them.
        loading.add_done_callback(lambda _: gc.freeze())
        await migrate(db)
        await identity.projects.ensure_default()
        prompt_dir = settings.prompts.directory or default_directory()
        if prompt_dir is None:
            log.warning("no prompts directory (./prompts or prompts.directory): the registry starts empty")
        else:
            try:
                await load_directory(prompts, prompt_dir, on_change=audit_changes(identity.audit))
            except PromptFileError as exc:
                log.error("cannot start: %s", exc)
                raise RuntimeError(f"cannot load prompts: {exc}") from None
        state.db_ready = True
        await recorder.start()
        # Embedded mode (no Redis) executes tasks in this process; distributed mode leaves that to `aitp worker`.
        await tasks.start(execute=not tasks.distributed, threads=settings.tasks.embedded_threads)
        if catalog.disabled:
            log.warning("deployments disabled: %s", catalog.disabled)
        try:
            yield
        finally:
            await tasks.stop()
            await recorder.stop()
            await alerts.drain()
            await ledger.close()
            if redis_client is not None:
                await redis_client.aclose()
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
        if redis_client is not None:
            try:
                await redis_client.ping()
                checks["redis"] = "ok"
            except Exception as exc:
                checks["redis"] = f"error: {type(exc).__name__}"
        checks["llm_engine"] = "ok" if engine_ref.ready else "loading"
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ok" if ok else "not_ready", "checks": checks}, status_code=200 if ok else 503)

    async def metrics_endpoint(request: Request) -> Response:
        with contextlib.suppress(SQLAlchemyError, OSError):
            await tasks.refresh_metrics()
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
            *gateway_routes(gateway),
            *identity_routes(identity),
            *budget_routes(identity, budget_store, enforcer, alerts),
            *report_routes(identity.principal, db, plus_price),
            *task_routes(identity.keys.authenticate, tasks),
            *prompt_routes(identity, prompts, db),
        ],
        middleware=[Middleware(RequestContextMiddleware, max_body_bytes=settings.server.max_body_bytes)],
        exception_handlers={
            APIError: handle_api_error,
            SQLAlchemyError: handle_database_error,
            HTTPException: handle_http_exception,
            Exception: handle_unexpected,
        },
        lifespan=lifespan,
    )
    app.state.aitp = state
    return app
