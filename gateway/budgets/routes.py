"""REST for budgets and alerts: ``/api/budgets``, ``/api/budgets/overview``, ``/api/budgets/{id}/status``, alerts.

Each handler parses the request, calls :class:`BudgetService` (which the MCP
tools call too) and answers; the rules live in the service.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.http import JSONResponse, read_json, request_id
from core.identity.middleware import principal_of
from core.validation import parse, query_int

from .service import MAX_ALERTS, MAX_OFFSET, BudgetService
from .specs import BudgetSpec


def budget_routes(budgets: BudgetService) -> list[Route]:
    async def put_budget(request: Request) -> Response:
        spec = parse(BudgetSpec, await read_json(request))
        view, created = await budgets.put(principal_of(request), spec, request_id(request))
        return JSONResponse(view, status_code=201 if created else 200)

    async def list_budgets(request: Request) -> Response:
        return JSONResponse(await budgets.list(principal_of(request), request.query_params.get("project") or None))

    async def overview(request: Request) -> Response:
        return JSONResponse(await budgets.overview(principal_of(request), request.query_params.get("project") or None))

    async def budget_status(request: Request) -> Response:
        return JSONResponse(await budgets.budget_status(principal_of(request), request.path_params["budget_id"]))

    async def delete_budget(request: Request) -> Response:
        deleted = await budgets.delete(principal_of(request), request.path_params["budget_id"], request_id(request))
        return JSONResponse(deleted)

    async def list_alerts(request: Request) -> Response:
        params = request.query_params
        found = await budgets.alerts(
            principal_of(request),
            params.get("project") or None,
            limit=query_int(params, "limit", 100, 1, MAX_ALERTS),
            offset=query_int(params, "offset", 0, 0, MAX_OFFSET),
        )
        return JSONResponse(found)

    return [
        Route("/api/budgets", put_budget, methods=["PUT", "POST"]),
        Route("/api/budgets", list_budgets, methods=["GET"]),
        Route("/api/budgets/overview", overview, methods=["GET"]),
        Route("/api/budgets/{budget_id}/status", budget_status, methods=["GET"]),
        Route("/api/budgets/{budget_id}", delete_budget, methods=["DELETE"]),
        Route("/api/alerts", list_alerts, methods=["GET"]),
    ]
