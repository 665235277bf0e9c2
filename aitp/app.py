"""The app factory: wires settings, database, gateway and health routes into one Starlette app."""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agents.assembly import build_kinds, build_services
from agents.automation import AutomationStore, automation_routes
from agents.kb import kb_routes
from agents.tasks.routes import task_routes
from agents.tasks.runtime import TaskRuntime
from agents.testcases.routes import testcase_routes
from core.clock import SystemClock
from core.db import create_engine, migrate
from core.http import InputGuardMiddleware, JSONResponse, RequestContextMiddleware, exception_handlers
from core.identity.audit import AuditLog
from core.identity.keys import KeyStore
from core.identity.middleware import AuthenticationMiddleware
from core.identity.projects import ProjectStore
from core.identity.routes import Identity, identity_routes
from core.redis import create_redis
from core.settings import Settings
from gateway.assembly import build_gateway_core
from gateway.budgets.routes import budget_routes
from gateway.chat import EngineRef
from gateway.pricing import Price
from gateway.prompts import PromptFileError, default_directory, load_directory, prompt_routes
from gateway.prompts.loader import audit_changes
from gateway.reports import report_routes
from gateway.routes import Gateway
from gateway.routes import routes as gateway_routes

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
    db = create_engine(settings.effective_database_url, settings.database_pool_size, settings.database_max_overflow)
    # Generous waits: under overload a request should queue for a connection, not fail.
    redis_client = (
        create_redis(settings.redis_url, settings.redis_max_connections, socket_timeout_s=5.0, pool_timeout_s=10.0)
        if settings.redis_url
        else None
    )
    clock = SystemClock()
    core = build_gateway_core(settings, db, redis_client, registry, clock)
    catalog, engine_ref, prompts = core.catalog, core.engine_ref, core.prompts
    services = build_services(settings, db, core, registry)
    tasks = TaskRuntime(settings, db, registry, clock=clock, kinds=build_kinds(services))
    state = State(settings=settings, registry=registry, engine_ref=engine_ref)
    identity = Identity(
        keys=KeyStore(db, resolve_admin_key(settings), clock),
        projects=ProjectStore(db, clock),
        audit=AuditLog(db, clock),
        clock=clock,
    )
    gateway = Gateway(
        catalog=catalog,
        chat=core.chat,
        embeddings=core.embeddings,
        created=int(clock.now().timestamp()),
    )

    def plus_price() -> Price:
        return engine_ref.current().tier_price("plus")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # litellm loads in a thread while migrations run and the server starts accepting requests.
        core.load_engine()
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
        await core.start()
        # Embedded mode (no Redis) executes tasks in this process; distributed mode leaves that to `aitp worker`.
        await tasks.start(execute=not tasks.distributed, threads=settings.tasks.embedded_threads)
        if catalog.disabled:
            log.warning("deployments disabled: %s", catalog.disabled)
        try:
            yield
        finally:
            await tasks.stop()
            await core.stop()
            await services.kb.close()
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
            *budget_routes(identity, core.budget_store, core.enforcer, core.alerts),
            *report_routes(db, plus_price, clock),
            *task_routes(identity.keys.authenticate, tasks),
            *testcase_routes(services, tasks.store),
            *kb_routes(services.kb, settings.kb.max_upload_bytes, tasks),
            *automation_routes(AutomationStore(db, clock)),
            *prompt_routes(identity, prompts, db, clock, services.testcases.acceptance),
        ],
        middleware=[
            Middleware(
                RequestContextMiddleware,
                max_body_bytes=settings.server.max_body_bytes,
                # Multipart framing adds a little to the document itself.
                path_limits={"/api/kb/documents": (settings.kb.max_upload_bytes + 64 * 1024, "kb.max_upload_bytes")},
            ),
            Middleware(InputGuardMiddleware),
            # Innermost, so that malformed or oversized requests are refused before a key lookup.
            Middleware(AuthenticationMiddleware, authenticate=identity.keys.authenticate),
        ],
        exception_handlers=exception_handlers(),
        lifespan=lifespan,
    )
    app.state.aitp = state
    return app
