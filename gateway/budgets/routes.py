"""Admin REST for budgets and alerts: ``/api/budgets``, ``/api/budgets/{id}/status``, ``/api/alerts``."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.errors import NotFound
from core.http import JSONResponse, read_json, request_id
from core.identity.middleware import principal_of
from core.identity.routes import Identity
from core.validation import parse, query_int

from .alerts import AlertSink
from .enforcer import BudgetEnforcer
from .specs import BudgetSpec
from .store import BudgetStore
from .tables import BudgetRow


def budget_view(row: BudgetRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "project": row.project_id,
        "name": row.name,
        "scope": row.scope,
        "scope_id": row.scope_id,
        "period": row.period,
        "limit_tokens": row.limit_tokens,
        "limit_usd": row.limit_usd,
        "action": row.action,
        "downgrade_at": row.downgrade_at,
        "thresholds": row.thresholds,
        "timezone": row.timezone,
    }


def budget_routes(identity: Identity, store: BudgetStore, enforcer: BudgetEnforcer, alerts: AlertSink) -> list[Route]:
    async def visible_budget(request: Request) -> BudgetRow:
        principal = principal_of(request)
        row = await store.get(request.path_params["budget_id"])
        if not principal.can_read(row.project_id):
            raise NotFound(f"no budget '{row.id}'; GET /api/budgets lists them", code="budget_not_found")
        return row

    async def put_budget(request: Request) -> Response:
        principal = principal_of(request)
        spec = parse(BudgetSpec, await read_json(request))
        spec.check()
        principal.require_admin(spec.project)
        await identity.visible_project(principal, spec.project)
        if spec.scope == "key" and spec.scope_id:
            key = await identity.keys.get(spec.scope_id)
            if key.project_id != spec.project:
                raise NotFound(f"no key '{spec.scope_id}' in project '{spec.project}'", code="key_not_found")
        row, created = await store.upsert(spec)
        await identity.audit.record(
            principal,
            "budget.create" if created else "budget.update",
            project_id=row.project_id,
            target=row.id,
            detail=spec.model_dump(mode="json"),
            request_id=request_id(request),
        )
        return JSONResponse(budget_view(row), status_code=201 if created else 200)

    async def list_budgets(request: Request) -> Response:
        principal = principal_of(request)
        project = request.query_params.get("project") or principal.scope()
        if project is not None:
            await identity.visible_project(principal, project)
        rows = await store.find(project)
        return JSONResponse({"items": [budget_view(r) for r in rows]})

    async def budget_status(request: Request) -> Response:
        row = await visible_budget(request)
        return JSONResponse({**budget_view(row), "status": await enforcer.status(row)})

    async def delete_budget(request: Request) -> Response:
        row = await visible_budget(request)
        principal = principal_of(request)
        principal.require_admin(row.project_id)
        await store.delete(row.id)
        await identity.audit.record(
            principal, "budget.delete", project_id=row.project_id, target=row.id, request_id=request_id(request)
        )
        return JSONResponse(budget_view(row))

    async def list_alerts(request: Request) -> Response:
        principal = principal_of(request)
        project = request.query_params.get("project") or principal.scope()
        if project is not None:
            await identity.visible_project(principal, project)
        limit = query_int(request.query_params, "limit", 100, 1, 1000)
        offset = query_int(request.query_params, "offset", 0, 0, 10**9)
        return JSONResponse({"items": await alerts.find(project, limit, offset), "limit": limit, "offset": offset})

    return [
        Route("/api/budgets", put_budget, methods=["PUT", "POST"]),
        Route("/api/budgets", list_budgets, methods=["GET"]),
        Route("/api/budgets/{budget_id}/status", budget_status, methods=["GET"]),
        Route("/api/budgets/{budget_id}", delete_budget, methods=["DELETE"]),
        Route("/api/alerts", list_alerts, methods=["GET"]),
    ]
