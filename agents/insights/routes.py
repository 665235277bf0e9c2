"""REST for the console's read-only views: ``GET /api/monitor`` and ``GET /api/usage/artefacts``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.http import JSONResponse
from core.identity.middleware import principal_of
from core.validation import query_int
from gateway.reports import parse_instant

from .artefacts import ArtefactCosts
from .monitor import DEFAULT_WINDOW_S, MAX_WINDOW_S, MonitorService


def insight_routes(monitor: MonitorService, artefacts: ArtefactCosts) -> list[Route]:
    async def monitor_snapshot(request: Request) -> Response:
        params = request.query_params
        found = await monitor.snapshot(
            principal_of(request),
            params.get("project") or None,
            query_int(params, "window_s", DEFAULT_WINDOW_S, 10, MAX_WINDOW_S),
        )
        return JSONResponse(found)

    async def artefact_costs(request: Request) -> Response:
        params = request.query_params
        found = await artefacts.costs(
            principal_of(request),
            params.get("project") or None,
            parse_instant(params, "from"),
            parse_instant(params, "to"),
            key=params.get("key") or None,
        )
        return JSONResponse(found)

    return [
        Route("/api/monitor", monitor_snapshot, methods=["GET"]),
        Route("/api/usage/artefacts", artefact_costs, methods=["GET"]),
    ]
