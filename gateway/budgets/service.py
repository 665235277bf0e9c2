"""Budget operations for every interface: put, list, status and delete budgets, list alerts, and a project overview.

Admins (the server admin key, or a project's admin key for its own project)
create, change and delete budgets; any key reads its own project's budgets
and alerts. Another project's budget answers 404, exactly like a missing one.
"""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from core.clock import Clock
from core.errors import NotFound
from core.identity.principal import Principal
from core.identity.routes import Identity
from core.timefmt import utc_iso
from core.validation import check_int, check_text, parse
from gateway.ledger.base import Period
from gateway.ledger.windows import window_for
from gateway.reports import UsageReports

from .alerts import AlertSink
from .enforcer import UNITS, BudgetEnforcer
from .forecast import RATE_WINDOW, forecast
from .specs import BudgetSpec
from .store import BudgetStore
from .tables import BudgetRow

MAX_ALERTS = 1000
MAX_OFFSET = 10**9


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


class BudgetService:
    def __init__(
        self,
        identity: Identity,
        store: BudgetStore,
        enforcer: BudgetEnforcer,
        alerts: AlertSink,
        reports: UsageReports,
        clock: Clock,
        timezone: str,
    ) -> None:
        self._identity = identity
        self._store = store
        self._enforcer = enforcer
        self._alerts = alerts
        self._reports = reports
        self._clock = clock
        self._zone = ZoneInfo(timezone)

    async def put(
        self, principal: Principal, spec: BudgetSpec | dict[str, Any], request_id: str | None = None
    ) -> tuple[dict[str, Any], bool]:
        """Create the budget, or change the one with the same project, scope and period; True when created."""
        spec = spec if isinstance(spec, BudgetSpec) else parse(BudgetSpec, spec)
        spec.check()
        principal.require_admin(spec.project)
        await self._identity.visible_project(principal, spec.project)
        if spec.scope == "key" and spec.scope_id:
            key = await self._identity.keys.get(spec.scope_id)
            if key.project_id != spec.project:
                raise NotFound(f"no key '{spec.scope_id}' in project '{spec.project}'", code="key_not_found")
        row, created = await self._store.upsert(spec)
        await self._identity.audit.record(
            principal,
            "budget.create" if created else "budget.update",
            project_id=row.project_id,
            target=row.id,
            detail=spec.model_dump(mode="json"),
            request_id=request_id,
        )
        return budget_view(row), created

    async def list(self, principal: Principal, project: str | None = None) -> dict[str, Any]:
        """``{items}``: the budgets of the caller's project (the server admin key: of ``project``, or all)."""
        project = await self._project_filter(principal, project)
        return {"items": [budget_view(r) for r in await self._store.find(project)]}

    async def budget_status(self, principal: Principal, budget_id: str) -> dict[str, Any]:
        """One budget with, per unit, what is used, reserved and left in the current window, and when it resets."""
        row = await self._visible(principal, budget_id)
        return {**budget_view(row), "status": await self._enforcer.status(row)}

    async def delete(self, principal: Principal, budget_id: str, request_id: str | None = None) -> dict[str, Any]:
        row = await self._visible(principal, budget_id)
        principal.require_admin(row.project_id)
        await self._store.delete(row.id)
        await self._identity.audit.record(
            principal, "budget.delete", project_id=row.project_id, target=row.id, request_id=request_id
        )
        return budget_view(row)

    async def alerts(
        self, principal: Principal, project: str | None = None, limit: int = 100, offset: int = 0
    ) -> dict[str, Any]:
        """``{items, limit, offset}``: threshold crossings, newest first."""
        project = await self._project_filter(principal, project)
        check_int(limit, "limit", 1, MAX_ALERTS)
        check_int(offset, "offset", 0, MAX_OFFSET)
        return {"items": await self._alerts.find(project, limit, offset), "limit": limit, "offset": offset}

    async def status(self, principal: Principal, project: str | None = None) -> dict[str, Any]:
        """What the caller's project (root: ``project``, default the default project) may still spend.

        ``budgets`` has one line per budget and unit (tokens, usd): used,
        reserved by calls in flight, remaining, reset time and action.
        ``spend_today_by_tier`` is today's cost (in ``budgets.timezone``) per
        tier, and ``savings_vs_all_plus_usd`` what ``model: auto`` saved today
        against sending every call to plus; ``today`` has the details.
        """
        if project is None:
            project = principal.project_id
        else:
            await self._identity.visible_project(principal, check_text(project, "project"))
        lines: builtins.list[dict[str, Any]] = []
        for row in await self._store.find(project):
            state = await self._enforcer.status(row)
            for unit in UNITS:
                used = state.get(unit)
                if not isinstance(used, dict):
                    continue
                lines.append(
                    {
                        "id": row.id,
                        "name": row.name,
                        "scope": row.scope,
                        "scope_id": row.scope_id,
                        "period": row.period,
                        "action": row.action,
                        "current_action": state["current_action"],
                        "unit": unit,
                        **used,
                    }
                )
        day = window_for(Period.DAY, self._clock.now(), self._zone)
        today = await self._reports.tiers(principal, project, day.start, day.end)
        return {
            "project": project,
            "budgets": lines,
            "spend_today_by_tier": today["cost_by_tier"],
            "savings_vs_all_plus_usd": today["savings"]["saved_usd"] if today["savings"]["auto_requests"] else None,
            "today": today,
        }

    async def overview(self, principal: Principal, project: str | None = None) -> dict[str, Any]:
        """``{now, items}``: each budget with its status and, per unit, a burn-down forecast (see ``forecast``)."""
        project = await self._project_filter(principal, project)
        now = self._clock.now()
        items: builtins.list[dict[str, Any]] = []
        for row in await self._store.find(project):
            state = await self._enforcer.status(row)
            tokens, usd = await self._reports.scope_spend(
                row.project_id, row.scope, row.scope_id, now - RATE_WINDOW, now
            )
            ahead: dict[str, Any] = {}
            for unit, spent in (("tokens", float(tokens)), ("usd", usd)):
                used = state.get(unit)
                if isinstance(used, dict):
                    resets = used["resets_at"]
                    ahead[unit] = forecast(
                        limit=used["limit"],
                        used=used["used"],
                        reserved=used["reserved"],
                        spent_24h=spent,
                        now=now,
                        resets_at=datetime.fromisoformat(resets) if resets else None,
                    )
            items.append({**budget_view(row), "status": state, "forecast": ahead})
        return {"now": utc_iso(now), "items": items}

    async def _visible(self, principal: Principal, budget_id: str) -> BudgetRow:
        row = await self._store.get(check_text(budget_id, "budget_id"))
        if not principal.can_read(row.project_id):
            raise NotFound(f"no budget '{row.id}'; GET /api/budgets lists them", code="budget_not_found")
        return row

    async def _project_filter(self, principal: Principal, project: str | None) -> str | None:
        project = project or principal.scope()
        if project is not None:
            await self._identity.visible_project(principal, check_text(project, "project"))
        return project
