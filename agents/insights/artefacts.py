"""Cost per artefact: what a generated test case, an accepted case and a browser run cost in model calls.

The tasks created in the window (of the caller's project, optionally of one
key) are the population: their usage rows (``usage_records.task_id``) give
the cost, and ``testcases`` the cases they produced and how many reviewers
accepted. A ratio with nothing to divide by is null.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, Select, Table, case, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from core.identity.principal import Principal
from core.timefmt import utc_iso
from gateway.reports import UsageReports, Window
from gateway.usage import UsageRecord

from ..tasks.tables import FINISHED, TaskRow
from ..testcases.tables import TestCaseRow

GENERATE = "testcase.generate"
BROWSER = "browser.run"
_tasks = cast(Table, TaskRow.__table__)
_cases = cast(Table, TestCaseRow.__table__)
_usage = cast(Table, UsageRecord.__table__)


def _stamp(value: datetime, dialect: str) -> datetime:
    # SQLite stores UTC wall time as text and compares text: bind naive UTC (as gateway.reports does).
    return value.replace(tzinfo=None) if dialect == "sqlite" else value


def _task_ids(win: Window, kind: str, dialect: str) -> Select[Any]:
    clauses: list[ColumnElement[bool]] = [
        _tasks.c.kind == kind,
        _tasks.c.created_at >= _stamp(win.start, dialect),
        _tasks.c.created_at < _stamp(win.end, dialect),
    ]
    if win.project is not None:
        clauses.append(_tasks.c.project_id == win.project)
    if win.key is not None:
        clauses.append(_tasks.c.key_id == win.key)
    if kind == BROWSER:
        clauses.append(_tasks.c.status.in_(FINISHED))
    return select(_tasks.c.id).where(*clauses)


async def _cost(conn: AsyncConnection, ids: Select[Any]) -> float:
    query = select(func.coalesce(func.sum(_usage.c.cost_usd), 0.0)).where(_usage.c.task_id.in_(ids))
    return float((await conn.execute(query)).scalar_one())


def _per(cost: float, count: int) -> float | None:
    return round(cost / count, 10) if count else None


class ArtefactCosts:
    def __init__(self, engine: AsyncEngine, reports: UsageReports) -> None:
        self._engine = engine
        self._reports = reports

    async def costs(
        self,
        principal: Principal,
        project: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        key: str | None = None,
    ) -> dict[str, Any]:
        """``{generation: {...}, browser: {...}}``: counts, cost and cost per artefact over the window."""
        win = await self._reports.window(principal, project, start, end, key)
        async with self._engine.connect() as conn:
            dialect = conn.dialect.name
            generate = _task_ids(win, GENERATE, dialect)
            tasks_n = int((await conn.execute(select(func.count()).select_from(generate.subquery()))).scalar_one())
            counted = select(
                func.count(), func.coalesce(func.sum(case((_cases.c.review_status == "accepted", 1), else_=0)), 0)
            ).where(_cases.c.task_id.in_(generate))
            generated, accepted = (await conn.execute(counted)).one()
            generation_cost = await _cost(conn, generate)
            browser = _task_ids(win, BROWSER, dialect)
            runs = int((await conn.execute(select(func.count()).select_from(browser.subquery()))).scalar_one())
            browser_cost = await _cost(conn, browser)
        generated, accepted = int(generated), int(accepted)
        return {
            "from": utc_iso(win.start),
            "to": utc_iso(win.end),
            "project": win.project,
            "key": win.key,
            "generation": {
                "tasks": tasks_n,
                "cost_usd": round(generation_cost, 10),
                "generated_cases": generated,
                "accepted_cases": accepted,
                "cost_per_generated_case_usd": _per(generation_cost, generated),
                "cost_per_accepted_case_usd": _per(generation_cost, accepted),
            },
            "browser": {
                "runs": runs,
                "cost_usd": round(browser_cost, 10),
                "cost_per_run_usd": _per(browser_cost, runs),
            },
        }
