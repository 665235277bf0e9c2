"""Stored test cases: written once per generation task, read, listed, reviewed; acceptance per prompt version."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal, cast

from sqlalchemy import Table, and_, case, delete, func, insert, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncEngine

from core.clock import Clock
from core.errors import NotFound
from core.identity.projects import Conflict
from core.timefmt import utc_iso

from .schemas import draft_label, is_draft
from .tables import TestCaseRow

cases = cast(Table, TestCaseRow.__table__)
c = cases.c
ReviewAction = Literal["accept", "reject", "edit"]
REVIEW_STATUSES = ("pending", "accepted", "rejected")


def case_view(row: RowMapping) -> dict[str, Any]:
    body = row["body"] or {}
    return {
        "id": row["id"],
        "task_id": row["task_id"],
        "project_id": row["project_id"],
        "title": row["title"],
        "module": row["module"],
        "preconditions": list(body.get("preconditions") or []),
        "steps": list(body.get("steps") or []),
        "priority": row["priority"],
        "type": row["type"],
        "covers": list(body.get("covers") or []),
        "source": row["source"],
        "prompt_name": row["prompt_name"],
        "prompt_version": row["prompt_version"],
        "review_status": row["review_status"],
        "draft": is_draft(row["source"], row["review_status"]),
        "label": draft_label(row["source"], row["review_status"], row["title"]),
        "edited": bool(row["edited"]),
        "review_note": row["review_note"],
        "reviewed_by": row["reviewed_by"],
        "reviewed_at": utc_iso(row["reviewed_at"]) if row["reviewed_at"] else None,
        "created_at": utc_iso(row["created_at"]),
        "updated_at": utc_iso(row["updated_at"]),  # the console's drafts compare it to spot a changed case
    }


def new_case_id() -> str:
    return "tc_" + uuid.uuid4().hex[:24]


class TestCaseStore:
    __test__ = False  # not a pytest class

    def __init__(self, engine: AsyncEngine, clock: Clock) -> None:
        self._engine = engine
        self._clock = clock

    async def replace_for_task(self, project_id: str, task_id: str, items: Sequence[dict[str, Any]]) -> None:
        """Store a task's cases, replacing any an earlier execution of the same task stored (one transaction)."""
        now = self._clock.now()
        rows = [
            {
                "id": item["id"],
                "project_id": project_id,
                "task_id": task_id,
                "seq": seq,
                "title": item["title"][:200],
                "module": (item.get("module") or "")[:200],
                "priority": item["priority"],
                "type": item["type"],
                "body": {
                    "preconditions": item.get("preconditions") or [],
                    "steps": item["steps"],
                    "covers": item.get("covers") or [],
                },
                "source": item["source"],
                "prompt_name": item.get("prompt_name"),
                "prompt_version": item.get("prompt_version"),
                "review_status": "pending",
                "edited": False,
                "created_at": now,
                "updated_at": now,
            }
            for seq, item in enumerate(items)
        ]
        async with self._engine.begin() as conn:
            await conn.execute(delete(cases).where(c.task_id == task_id, c.project_id == project_id))
            if rows:
                await conn.execute(insert(cases), rows)

    async def get(self, project_id: str | None, case_id: str) -> dict[str, Any]:
        """One case; another project's case is 404, exactly like a missing one (None: any project)."""
        where = [c.id == case_id]
        if project_id is not None:
            where.append(c.project_id == project_id)
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(cases).where(*where))).mappings().first()
        if row is None:
            raise NotFound(f"test case '{case_id}' not found", code="testcase_not_found")
        return case_view(row)

    async def for_task(self, project_id: str | None, task_id: str) -> list[dict[str, Any]]:
        where = [c.task_id == task_id]
        if project_id is not None:
            where.append(c.project_id == project_id)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(cases).where(*where).order_by(c.seq))).mappings().all()
        return [case_view(r) for r in rows]

    async def find(
        self, project_id: str | None, *, task_id: str | None, status: str | None, limit: int, offset: int
    ) -> tuple[int, list[dict[str, Any]]]:
        where = []
        if project_id is not None:
            where.append(c.project_id == project_id)
        if task_id is not None:
            where.append(c.task_id == task_id)
        if status is not None:
            where.append(c.review_status == status)
        cond = and_(True, *where)
        async with self._engine.connect() as conn:
            total = int((await conn.execute(select(func.count()).select_from(cases).where(cond))).scalar_one())
            rows = (
                (
                    await conn.execute(
                        select(cases).where(cond).order_by(c.created_at.desc(), c.seq).limit(limit).offset(offset)
                    )
                )
                .mappings()
                .all()
            )
        return total, [case_view(r) for r in rows]

    async def review(
        self,
        project_id: str | None,
        case_id: str,
        *,
        status: str,
        changes: dict[str, Any] | None,
        note: str | None,
        reviewer: str,
    ) -> dict[str, Any]:
        """Set the review status (and apply edits); returns the case as stored."""
        current = await self.get(project_id, case_id)
        return (await self.review_many(project_id, [(current, status, changes, note)], reviewer))[0]

    async def review_many(
        self,
        project_id: str | None,
        reviews: Sequence[tuple[dict[str, Any], str, dict[str, Any] | None, str | None]],
        reviewer: str,
    ) -> list[dict[str, Any]]:
        """Apply (case as read, status, edits, note) to each case in ONE transaction: all are stored, or none.

        A case that is gone (or moved out of the project) since it was read rolls the whole batch back.
        """
        now = self._clock.now()
        ids = [current["id"] for current, _, _, _ in reviews]
        async with self._engine.begin() as conn:
            for current, status, changes, note in reviews:
                where = [c.id == current["id"]]
                if project_id is not None:
                    where.append(c.project_id == project_id)
                values = _review_values(current, status, changes, note, reviewer, now)
                done = await conn.execute(update(cases).where(*where).values(**values))
                if done.rowcount != 1:  # type: ignore[attr-defined]
                    raise Conflict(
                        f"test case '{current['id']}' changed while it was reviewed; nothing was stored, try again",
                        code="review_conflict",
                    )
            rows = (await conn.execute(select(cases).where(c.id.in_(ids)))).mappings().all()
        by_id = {row["id"]: case_view(row) for row in rows}
        return [by_id[case_id] for case_id in ids]

    async def acceptance(
        self, name: str, start: datetime, end: datetime, project: str | None
    ) -> dict[int, tuple[int, int]]:
        """Per prompt version: (accepted, reviewed) cases reviewed in [start, end)."""
        if self._engine.dialect.name == "sqlite":
            start, end = start.replace(tzinfo=None), end.replace(tzinfo=None)
        where = [
            c.prompt_name == name,
            c.prompt_version.is_not(None),
            c.review_status != "pending",
            c.reviewed_at >= start,
            c.reviewed_at < end,
        ]
        if project is not None:
            where.append(c.project_id == project)
        query = (
            select(
                c.prompt_version,
                func.sum(case((c.review_status == "accepted", 1), else_=0)),
                func.count(),
            )
            .where(*where)
            .group_by(c.prompt_version)
        )
        async with self._engine.connect() as conn:
            return {
                int(version): (int(accepted or 0), int(reviewed))
                for version, accepted, reviewed in await conn.execute(query)
            }


def _review_values(
    current: dict[str, Any],
    status: str,
    changes: dict[str, Any] | None,
    note: str | None,
    reviewer: str,
    now: datetime,
) -> dict[str, Any]:
    values: dict[str, Any] = {
        "review_status": status,
        "review_note": note,
        "reviewed_by": reviewer,
        "reviewed_at": now,
        "updated_at": now,
    }
    if changes:
        values["edited"] = True
        for field in ("title", "module", "priority", "type"):
            if field in changes:
                values[field] = changes[field]
        values["body"] = {
            "preconditions": changes.get("preconditions", current["preconditions"]),
            "steps": changes.get("steps", current["steps"]),
            "covers": changes.get("covers", current["covers"]),
        }
    return values
