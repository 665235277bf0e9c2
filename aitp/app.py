"""The app factory: HTTP in front of the platform (agents/platform.py): REST, the OpenAI routes, health, metrics."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from importlib.metadata import PackageNotFoundError, version

from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agents.automation import automation_routes
from agents.kb import kb_routes
from agents.platform import Platform
from agents.tasks.routes import task_routes
from agents.testcases.routes import testcase_routes
from aitp.api_reference import reference_routes
from aitp.mcp_app import mount_mcp
from core.http import InputGuardMiddleware, JSONResponse, RequestContextMiddleware, exception_handlers
from core.identity.middleware import AuthenticationMiddleware
from core.identity.routes import identity_routes
from core.settings import Settings
from gateway.budgets.routes import budget_routes
from gateway.prompts import prompt_routes
from gateway.reports import report_routes
from gateway.routes import Gateway
from gateway.routes import routes as gateway_routes

log = logging.getLogger("aitp.app")


def _version() -> str:
    try:
        return version("aitp")
    except PackageNotFoundError:
        return "0+unknown"


def create_app(settings: Settings) -> Starlette:
    """The app; ``app.state.services`` holds the :class:`~agents.platform.Services` every interface calls."""
    platform = Platform(settings)
    services, core, db, identity = platform.services, platform.gateway, platform.db, platform.identity
    engine_ref = core.engine_ref
    gateway = Gateway(
        catalog=core.catalog,
        chat=core.chat,
        embeddings=core.embeddings,
        created=int(platform.clock.now().timestamp()),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await platform.start()
        try:
            async with mcp if mcp is not None else contextlib.nullcontext():
                yield
        finally:
            await platform.stop()

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
        if platform.redis is not None:
            try:
                await platform.redis.ping()
                checks["redis"] = "ok"
            except Exception as exc:
                checks["redis"] = f"error: {type(exc).__name__}"
        checks["llm_engine"] = "ok" if engine_ref.ready else "loading"
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ok" if ok else "not_ready", "checks": checks}, status_code=200 if ok else 503)

    async def metrics_endpoint(request: Request) -> Response:
        with contextlib.suppress(SQLAlchemyError, OSError):
            await platform.runtime.refresh_metrics()
        return Response(generate_latest(platform.registry), media_type=CONTENT_TYPE_LATEST)

    app = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
            *gateway_routes(gateway),
            *identity_routes(identity),
            *budget_routes(services.budgets),
            *report_routes(services.usage),
            *task_routes(services.tasks, identity.keys.authenticate),
            *testcase_routes(services.testcases),
            *kb_routes(services.knowledge),
            *automation_routes(services.automation),
            *prompt_routes(services.prompts),
            *reference_routes(_version()),
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
    mcp = mount_mcp(app, platform) if settings.mcp.enabled else None
    app.state.platform = platform
    app.state.services = services
    return app
