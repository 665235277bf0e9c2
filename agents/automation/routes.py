"""Automation cases API: ``GET /api/automation/cases`` and ``GET /api/automation/cases/{id}``.

Any key of a project reads its cases; another project's case answers 404,
exactly like a missing one. The server admin key sees every project.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from core.errors import InvalidRequest
from core.http import JSONResponse
from core.identity.middleware import principal_of
from core.validation import query_int

from .store import AutomationStore

TARGETS = ("browser", "api")


def automation_routes(store: AutomationStore) -> list[BaseRoute]:
    async def list_cases(request: Request) -> Response:
        project = principal_of(request).scope()
        params = request.query_params
        target = params.get("target") or None
        if target is not None and target not in TARGETS:
            raise InvalidRequest(f"query parameter 'target' must be browser or api, got {target!r}", param="target")
        limit = query_int(params, "limit", 50, 1, 500)
        offset = query_int(params, "offset", 0, 0, 10**9)
        total, items = await store.list(project, target=target, limit=limit, offset=offset)
        return JSONResponse({"total": total, "items": items, "limit": limit, "offset": offset})

    async def get_case(request: Request) -> Response:
        project = principal_of(request).scope()
        return JSONResponse(await store.get(request.path_params["case_id"], project))

    return [
        Route("/api/automation/cases", list_cases, methods=["GET"]),
        Route("/api/automation/cases/{case_id}", get_case, methods=["GET"]),
    ]
