"""The app factory: HTTP in front of the platform (agents/platform.py): REST, the OpenAI routes, health, metrics."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agents.automation import automation_routes
from agents.browser.routes import browser_routes
from agents.health import platform_readiness
from agents.insights import insight_routes
from agents.kb import kb_routes
from agents.platform import Platform
from agents.tasks.routes import task_routes
from agents.testcases.routes import testcase_routes
from aitp.console import console_routes
from aitp.mcp_app import mount_mcp
from core.http import InputGuardMiddleware, JSONResponse, RequestContextMiddleware, exception_handlers
from core.identity.middleware import AuthenticationMiddleware
from core.identity.routes import identity_routes
from core.settings import Settings
from core.tracing import Tracing, TracingMiddleware
from gateway.budgets.routes import budget_routes
from gateway.prompts import prompt_routes
from gateway.reports import report_routes
from gateway.routes import Gateway
from gateway.routes import routes as gateway_routes

log = logging.getLogger("aitp.app")


def create_app(settings: Settings, *, tracing: Tracing | None = None) -> Starlette:
    """The app; ``app.state.services`` holds the :class:`~agents.platform.Services` every interface calls."""
    platform = Platform(settings, tracing=tracing)
    services, core, identity = platform.services, platform.gateway, platform.identity
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

    readiness = platform_readiness(platform)

    async def readyz(request: Request) -> Response:
        report = await readiness.run()
        return JSONResponse(report.view(), status_code=200 if report.ready else 503)

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
            *browser_routes(services.browser),
            *prompt_routes(services.prompts),
            *insight_routes(services.monitor, services.artefacts),
            *console_routes(),
        ],
        middleware=[
            # Outermost when on: the server span covers everything else.
            *([Middleware(TracingMiddleware, tracer=platform.tracing.tracer)] if platform.tracing.enabled else []),
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
