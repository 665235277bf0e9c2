"""Automation cases API: ``GET /api/automation/cases`` and ``GET /api/automation/cases/{id}``.

Each handler parses the request, calls :class:`AutomationService` and answers.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from core.http import JSONResponse
from core.identity.middleware import principal_of
from core.validation import query_int

from .service import MAX_OFFSET, MAX_PAGE, AutomationService


def automation_routes(automation: AutomationService) -> list[BaseRoute]:
    async def list_cases(request: Request) -> Response:
        params = request.query_params
        found = await automation.list_cases(
            principal_of(request),
            params.get("target") or None,
            limit=query_int(params, "limit", 50, 1, MAX_PAGE),
            offset=query_int(params, "offset", 0, 0, MAX_OFFSET),
        )
        return JSONResponse(found)

    async def get_case(request: Request) -> Response:
        return JSONResponse(await automation.get_case(principal_of(request), request.path_params["case_id"]))

    return [
        Route("/api/automation/cases", list_cases, methods=["GET"]),
        Route("/api/automation/cases/{case_id}", get_case, methods=["GET"]),
    ]
