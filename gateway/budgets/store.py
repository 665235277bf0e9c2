"""Budgets as rows: upsert by (project, scope, scope id, period), list, and find those that apply."""

from __future__ import annotations

import secrets

from sqlalchemy import and_, bindparam, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from core.clock import Clock
from core.errors import NotFound

from .specs import BudgetSpec
from .tables import BudgetRow


def budget_name(row: BudgetRow) -> str:
    scope = row.project_id if row.scope == "project" else f"{row.project_id}/{row.scope}:{row.scope_id}"
    return row.name or f"{scope}/{row.period}"


class BudgetStore:
    def __init__(self, engine: AsyncEngine, timezone: str, clock: Clock) -> None:
        self._timezone = timezone
        self._clock = clock
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        # Built once: this query runs on every call, and building it costs more than running it.
        self._applicable = select(BudgetRow).where(
            BudgetRow.project_id == bindparam("project"),
            or_(
                and_(BudgetRow.scope == "project", BudgetRow.scope_id == bindparam("project")),
                and_(BudgetRow.scope == "key", BudgetRow.scope_id == bindparam("key")),
                and_(BudgetRow.scope == "user", BudgetRow.scope_id == bindparam("user")),
            ),
        )

    async def upsert(self, spec: BudgetSpec) -> tuple[BudgetRow, bool]:
        """Create the budget, or change the one with the same scope and period; True when created."""
        scope_id = spec.scope_id or spec.project
        now = self._clock.now()
        async with self._sessions.begin() as session:
            row = (
                await session.scalars(
                    select(BudgetRow).where(
                        BudgetRow.project_id == spec.project,
                        BudgetRow.scope == spec.scope,
                        BudgetRow.scope_id == scope_id,
                        BudgetRow.period == spec.period,
                    )
                )
            ).first()
            created = row is None
            if row is None:
                row = BudgetRow(
                    id="bud_" + secrets.token_hex(6),
                    project_id=spec.project,
                    scope=spec.scope,
                    scope_id=scope_id,
                    period=spec.period,
                    timezone=self._timezone,
                    created_at=now,
                )
                session.add(row)
            row.limit_tokens = spec.limit_tokens
            row.limit_usd = spec.limit_usd
            row.action = spec.action
            row.downgrade_at = spec.downgrade_at
            row.thresholds = spec.thresholds
            row.updated_at = now
            row.name = spec.name or ""
            if not row.name:
                row.name = budget_name(row)
        return row, created

    async def get(self, budget_id: str) -> BudgetRow:
        async with self._sessions() as session:
            row = await session.get(BudgetRow, budget_id)
        if row is None:
            raise NotFound(f"no budget '{budget_id}'; GET /api/budgets lists them", code="budget_not_found")
        return row

    async def delete(self, budget_id: str) -> None:
        async with self._sessions.begin() as session:
            await session.execute(delete(BudgetRow).where(BudgetRow.id == budget_id))

    async def find(self, project_id: str | None) -> list[BudgetRow]:
        query = select(BudgetRow).order_by(BudgetRow.project_id, BudgetRow.created_at)
        if project_id is not None:
            query = query.where(BudgetRow.project_id == project_id)
        async with self._sessions() as session:
            return list((await session.scalars(query)).all())

    async def applicable(self, project_id: str, key_id: str, user: str | None) -> list[BudgetRow]:
        """Every budget a request of this key (and end user) is checked against."""
        params = {"project": project_id, "key": key_id, "user": user}
        async with self._sessions() as session:
            return list((await session.scalars(self._applicable, params)).all())
