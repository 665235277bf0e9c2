"""The automation cases store: one case per ``automation.generate`` task, created idempotently."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, cast

from sqlalchemy import Table, and_, func, insert, literal_column, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from core.clock import Clock
from core.errors import NotFound
from core.timefmt import utc_iso

from .tables import AutomationCaseRow

cases = cast(Table, AutomationCaseRow.__table__)


def case_view(row: Mapping[Any, Any]) -> dict[str, Any]:
    """An automation case as the API and the task result show it."""
    return {
        "id": row["id"],
        "project": row["project_id"],
        "task_id": row["task_id"],
        "testcase_id": row["testcase_id"],
        "name": row["name"],
        "target": row["target"],
        "body": row["body"],
        "validation": row["validation"],
        "review_action": row["review_action"],
        "prompt": {"name": row["prompt_name"], "version": row["prompt_version"]},
        "created_at": utc_iso(row["created_at"]),
    }


class AutomationStore:
    def __init__(self, engine: AsyncEngine, clock: Clock) -> None:
        self._engine = engine
        self._clock = clock

    async def create_or_get(
        self,
        *,
        project_id: str,
        task_id: str,
        testcase_id: str | None,
        name: str,
        target: str,
        body: dict[str, Any],
        validation: dict[str, Any],
        review_action: str,
        prompt_name: str | None,
        prompt_version: int | None,
    ) -> dict[str, Any]:
        """The task's case: created now, or the one an earlier execution of the same task created."""
        existing = await self._by_task(task_id)
        if existing is not None:
            return existing
        row = {
            "id": uuid.uuid4().hex,
            "project_id": project_id,
            "task_id": task_id,
            "testcase_id": testcase_id,
            "name": name[:200],
            "target": target,
            "body": body,
            "validation": validation,
            "review_action": review_action,
            "prompt_name": prompt_name,
            "prompt_version": prompt_version,
            "created_at": self._clock.now(),
        }
        try:
            async with self._engine.begin() as conn:
                await conn.execute(insert(cases), row)
        except IntegrityError:
            # A concurrent execution of the same task won (task_id is unique): answer with its case.
            existing = await self._by_task(task_id)
            if existing is None:
                raise
            return existing
        return case_view(row)

    async def _by_task(self, task_id: str) -> dict[str, Any] | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(cases).where(cases.c.task_id == task_id))).mappings().first()
        return case_view(row) if row is not None else None

    async def get(self, case_id: str, project_id: str | None) -> dict[str, Any]:
        """The case; another project's case is a 404 exactly like a missing one (``None``: any project)."""
        query = select(cases).where(cases.c.id == case_id)
        if project_id is not None:
            query = query.where(cases.c.project_id == project_id)
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        if row is None:
            raise NotFound(
                f"no automation case '{case_id}'; GET /api/automation/cases lists your project's cases",
                code="automation_case_not_found",
            )
        return case_view(row)

    async def list(
        self, project_id: str | None, *, target: str | None = None, limit: int = 50, offset: int = 0
    ) -> tuple[int, list[dict[str, Any]]]:
        """``(total, page)``, newest first."""
        conditions = []
        if project_id is not None:
            conditions.append(cases.c.project_id == project_id)
        if target is not None:
            conditions.append(cases.c.target == target)
        where = and_(*conditions) if conditions else literal_column("1") == 1
        page = select(cases).where(where).order_by(cases.c.created_at.desc(), cases.c.id).limit(limit).offset(offset)
        async with self._engine.connect() as conn:
            total = (await conn.execute(select(func.count()).select_from(cases).where(where))).scalar_one()
            rows = (await conn.execute(page)).mappings().all()
        return int(total), [case_view(r) for r in rows]
