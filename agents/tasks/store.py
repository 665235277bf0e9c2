"""The task store, API side: submit (idempotent), read, list, cancel, review, stats, retention.

Writes that change a task also append to ``task_events`` in the same
transaction, and the event goes to the bus after the commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Float, Table, and_, case, delete, func, insert, literal_column, or_, select, update
from sqlalchemy import cast as sql_cast
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from core.clock import Clock
from core.errors import NotFound
from core.identity.projects import Conflict
from core.timefmt import aware, utc_iso

from .events import LocalBus, TaskEvent
from .tables import CANCELLED, FAILED, FINISHED, PENDING, REVIEWING, RUNNING, SUCCEEDED, TaskEventRow, TaskRow

tasks = cast(Table, TaskRow.__table__)
events = cast(Table, TaskEventRow.__table__)
# Built once: the hot paths pass parameters instead of rebuilding statements (most of their CPU cost).
INSERT_TASK = insert(tasks).returning(*tasks.c)
INSERT_EVENT = insert(events).returning(events.c.id)


def task_view(row: Mapping[Any, Any]) -> dict[str, Any]:
    """The task as the API shows it (lease internals left out)."""
    return {
        "id": row["id"],
        "project": row["project_id"],
        "kind": row["kind"],
        "status": row["status"],
        "progress": row["progress"],
        "current_step": row["current_step"],
        "input": row["input"],
        "result": row["result"],
        "error": row["error"],
        "need_review": row["need_review"],
        "interrupt_data": row["interrupt_data"],
        "review": row["review"],
        "cancel_requested": row["cancel_requested"],
        "idempotency_key": row["idempotency_key"],
        "priority": row["priority"],
        "attempts": row["attempts"],
        "max_attempts": row["max_attempts"],
        "created_at": utc_iso(row["created_at"]),
        "started_at": utc_iso(row["started_at"]),
        "finished_at": utc_iso(row["finished_at"]),
        "updated_at": utc_iso(row["updated_at"]),
        "heartbeat_at": utc_iso(row["heartbeat_at"]),
    }


async def insert_event(
    conn: AsyncConnection, task_id: str, project_id: str, type_: str, data: dict[str, Any] | None, now: datetime
) -> TaskEvent:
    values = {"task_id": task_id, "project_id": project_id, "type": type_, "data": data, "created_at": now}
    event_id = (await conn.execute(INSERT_EVENT, values)).scalar_one()
    return TaskEvent(event_id, task_id, project_id, type_, data, utc_iso(now) or "")


def event_from_row(row: Mapping[Any, Any]) -> TaskEvent:
    return TaskEvent(
        row["id"], row["task_id"], row["project_id"], row["type"], row["data"], utc_iso(row["created_at"]) or ""
    )


def _not_found(task_id: str) -> NotFound:
    return NotFound(f"no task '{task_id}'; GET /api/tasks lists your project's tasks", code="task_not_found")


class TaskStore:
    def __init__(self, engine: AsyncEngine, bus: LocalBus, clock: Clock) -> None:
        self._engine = engine
        self._bus = bus
        self._clock = clock

    async def submit(
        self,
        *,
        project_id: str,
        key_id: str,
        kind: str,
        input: dict[str, Any],
        idempotency_key: str | None,
        priority: int,
        max_attempts: int,
    ) -> tuple[RowMapping, bool]:
        """The new task and True, or the task already submitted under this idempotency key and False."""
        if idempotency_key is not None:
            existing = await self._by_key(project_id, idempotency_key)
            if existing is not None:
                return self._same_request(existing, kind, input), False
        now = self._clock.now()
        row = {
            "id": uuid.uuid4().hex,
            "project_id": project_id,
            "key_id": key_id,
            "kind": kind,
            "status": PENDING,
            "progress": 0,
            "input": input,
            "need_review": False,
            "cancel_requested": False,
            "idempotency_key": idempotency_key,
            "priority": priority,
            "attempts": 0,
            "max_attempts": max_attempts,
            "created_at": now,
            "updated_at": now,
        }
        try:
            async with self._engine.begin() as conn:
                created = (await conn.execute(INSERT_TASK, row)).mappings().one()
                event = await insert_event(conn, str(row["id"]), project_id, "task_created", {"kind": kind}, now)
        except IntegrityError:
            # Another submit with the same key won the race; answer with its task.
            existing = await self._by_key(project_id, idempotency_key) if idempotency_key else None
            if existing is None:
                raise
            return self._same_request(existing, kind, input), False
        self._bus.publish(event)
        return created, True

    @staticmethod
    def _same_request(row: RowMapping, kind: str, input: dict[str, Any]) -> RowMapping:
        if row["kind"] != kind or row["input"] != input:
            raise Conflict(
                f"idempotency key '{row['idempotency_key']}' was used for task {row['id']} with another kind or "
                "input; send the same request again, or use a new key",
                param="idempotency_key",
                code="idempotency_key_reused",
            )
        return row

    async def _by_key(self, project_id: str, key: str) -> RowMapping | None:
        query = select(tasks).where(tasks.c.project_id == project_id, tasks.c.idempotency_key == key)
        async with self._engine.connect() as conn:
            return (await conn.execute(query)).mappings().first()

    async def get(self, task_id: str, project_id: str | None) -> RowMapping:
        """The task; another project's task is a 404 exactly like a missing one (``None``: any project)."""
        query = select(tasks).where(tasks.c.id == task_id)
        if project_id is not None:
            query = query.where(tasks.c.project_id == project_id)
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        if row is None:
            raise _not_found(task_id)
        return row

    async def find(
        self, project_id: str | None, status: str | None, kind: str | None, limit: int, offset: int
    ) -> tuple[int, list[RowMapping]]:
        conditions = []
        if project_id is not None:
            conditions.append(tasks.c.project_id == project_id)
        if status is not None:
            conditions.append(tasks.c.status == status)
        if kind is not None:
            conditions.append(tasks.c.kind == kind)
        where = and_(*conditions) if conditions else literal_column("1") == 1
        page = select(tasks).where(where).order_by(tasks.c.created_at.desc(), tasks.c.id).limit(limit).offset(offset)
        async with self._engine.connect() as conn:
            total = (await conn.execute(select(func.count()).select_from(tasks).where(where))).scalar_one()
            rows = list((await conn.execute(page)).mappings().all())
        return int(total), rows

    async def cancel(self, task_id: str, project_id: str | None) -> RowMapping:
        """A task not yet running is cancelled at once; a running one is asked to stop at its next step."""
        row = await self.get(task_id, project_id)
        now = self._clock.now()
        event: TaskEvent | None = None
        async with self._engine.begin() as conn:
            at_once = await conn.execute(
                update(tasks)
                .where(tasks.c.id == task_id, tasks.c.status.in_((PENDING, REVIEWING)))
                .values(status=CANCELLED, finished_at=now, updated_at=now, lease_token=None, need_review=False)
            )
            if at_once.rowcount == 1:
                event = await insert_event(conn, task_id, row["project_id"], "task_cancelled", {"by": "request"}, now)
            else:
                requested = await conn.execute(
                    update(tasks)
                    .where(tasks.c.id == task_id, tasks.c.status == RUNNING, tasks.c.cancel_requested.is_(False))
                    .values(cancel_requested=True, updated_at=now)
                )
                if requested.rowcount == 1:
                    event = await insert_event(conn, task_id, row["project_id"], "task_cancel_requested", None, now)
        if event is not None:
            self._bus.publish(event)
        latest = await self.get(task_id, project_id)
        if latest["status"] in (SUCCEEDED, FAILED):
            raise Conflict(
                f"task {task_id} has already {latest['status']}; it cannot be cancelled", code="task_finished"
            )
        return latest

    async def review(self, task_id: str, project_id: str | None, decision: dict[str, Any]) -> RowMapping:
        """Record the decision on a task waiting for review; the caller then enqueues it to resume."""
        row = await self.get(task_id, project_id)
        now = self._clock.now()
        async with self._engine.begin() as conn:
            done = await conn.execute(
                update(tasks)
                .where(tasks.c.id == task_id, tasks.c.status == REVIEWING, tasks.c.need_review.is_(True))
                .values(need_review=False, review=decision, updated_at=now)
            )
            event = None
            if done.rowcount == 1:
                event = await insert_event(conn, task_id, row["project_id"], "task_reviewed", decision, now)
        if event is None:
            raise Conflict(
                f"task {task_id} is {row['status']}, not waiting for review; "
                "only a task in 'reviewing' can be reviewed",
                code="task_not_reviewing",
            )
        self._bus.publish(event)
        return await self.get(task_id, project_id)

    async def events_after(self, task_id: str, after_id: int, limit: int = 500) -> list[TaskEvent]:
        query = (
            select(events).where(events.c.task_id == task_id, events.c.id > after_id).order_by(events.c.id).limit(limit)
        )
        async with self._engine.connect() as conn:
            return [event_from_row(r) for r in (await conn.execute(query)).mappings()]

    async def counts(self, project_id: str | None = None) -> list[tuple[str, str, int]]:
        """(status, kind, tasks) for every pair present."""
        query = select(tasks.c.status, tasks.c.kind, func.count()).group_by(tasks.c.status, tasks.c.kind)
        if project_id is not None:
            query = query.where(tasks.c.project_id == project_id)
        async with self._engine.connect() as conn:
            return [(s, k, int(n)) for s, k, n in (await conn.execute(query)).all()]

    async def stats(self, project_id: str | None) -> dict[str, Any]:
        counts = await self.counts(project_id)
        by_status: dict[str, int] = {}
        by_kind: dict[str, dict[str, int]] = {}
        for status, kind, n in counts:
            by_status[status] = by_status.get(status, 0) + n
            by_kind.setdefault(kind, {})[status] = n
        if self._engine.dialect.name == "postgresql":
            seconds: Any = func.extract("epoch", tasks.c.finished_at - tasks.c.started_at)
        else:
            seconds = (func.julianday(tasks.c.finished_at) - func.julianday(tasks.c.started_at)) * 86400.0
        query = select(
            func.avg(case((tasks.c.status == SUCCEEDED, sql_cast(seconds, Float)))),
            func.min(case((tasks.c.status == PENDING, tasks.c.created_at))),
        )
        if project_id is not None:
            query = query.where(tasks.c.project_id == project_id)
        async with self._engine.connect() as conn:
            mean, oldest_pending = (await conn.execute(query)).one()
        succeeded, failed = by_status.get(SUCCEEDED, 0), by_status.get(FAILED, 0)
        oldest = aware(oldest_pending)
        return {
            "total": sum(by_status.values()),
            "by_status": by_status,
            "by_kind": by_kind,
            "success_rate": round(succeeded / (succeeded + failed), 4) if succeeded + failed else None,
            "mean_duration_s": None if mean is None else round(float(mean), 3),
            "backlog": by_status.get(PENDING, 0),
            "oldest_pending_age_s": None if oldest is None else round((self._clock.now() - oldest).total_seconds(), 3),
        }

    async def unfinished(self) -> list[tuple[str, str]]:
        """(id, kind) of every task that should run again after a restart of embedded mode."""
        now = self._clock.now()
        query = (
            select(tasks.c.id, tasks.c.kind)
            .where(
                or_(
                    tasks.c.status == PENDING,
                    and_(tasks.c.status == RUNNING, tasks.c.lease_expires_at < now),
                    and_(tasks.c.status == REVIEWING, tasks.c.need_review.is_(False)),
                )
            )
            .order_by(tasks.c.priority.desc(), tasks.c.created_at)
        )
        async with self._engine.connect() as conn:
            return [(i, k) for i, k in (await conn.execute(query)).all()]

    async def purge(self, retention: timedelta, batch: int = 1000) -> int:
        """Delete finished tasks (and their events) that finished longer ago than ``retention``."""
        cutoff = self._clock.now() - retention
        purged = 0
        while True:
            async with self._engine.begin() as conn:
                ids = list(
                    (
                        await conn.execute(
                            select(tasks.c.id)
                            .where(tasks.c.status.in_(FINISHED), tasks.c.finished_at < cutoff)
                            .limit(batch)
                        )
                    ).scalars()
                )
                if not ids:
                    return purged
                await conn.execute(delete(events).where(events.c.task_id.in_(ids)))
                await conn.execute(delete(tasks).where(tasks.c.id.in_(ids)))
            purged += len(ids)
