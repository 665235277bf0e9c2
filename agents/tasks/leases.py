"""The task store, worker side: claim, heartbeat, progress and finish, each guarded by the lease.

Dramatiq delivers a message at least once; these writes make its effects
happen once. :meth:`LeaseStore.claim` is one conditional UPDATE: a task that
is pending, resumed after review, or running under an expired lease gets a
new lease token; anything else (claimed, finished, cancelled) leaves the
message a duplicate to drop. Every later write names the token, so a worker
that lost its lease (it stalled and another took over) can no longer change
the task.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, bindparam, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from core.clock import Clock
from core.timefmt import utc_iso

from .events import LocalBus, TaskEvent
from .store import insert_event, tasks
from .tables import CANCELLED, FAILED, PENDING, REVIEWING, RUNNING, SUCCEEDED


class LeaseLost(Exception):
    """This worker no longer holds the task: another claimed it after the lease expired."""


@dataclass(frozen=True, slots=True)
class Lease:
    task_id: str
    token: str
    project_id: str
    kind: str
    attempt: int
    max_attempts: int
    input: dict[str, Any]
    review: dict[str, Any] | None
    checkpoint: Any
    key_id: str = ""  # the key that submitted the task: agents spend under it


@dataclass(frozen=True, slots=True)
class Reaped:
    requeue: list[tuple[str, str]]  # (task id, kind) to enqueue again
    failed: list[str]


_CLAIM = (
    update(tasks)
    .where(
        tasks.c.id == bindparam("c_id"),
        tasks.c.attempts < tasks.c.max_attempts,
        or_(
            tasks.c.status == PENDING,
            and_(tasks.c.status == RUNNING, tasks.c.lease_expires_at < bindparam("c_now")),
            and_(tasks.c.status == REVIEWING, tasks.c.need_review.is_(False)),
        ),
    )
    .values(
        status=RUNNING,
        lease_token=bindparam("c_token"),
        lease_expires_at=bindparam("c_until"),
        heartbeat_at=bindparam("c_now"),
        attempts=tasks.c.attempts + 1,
        started_at=func.coalesce(tasks.c.started_at, bindparam("c_now")),
        cancel_requested=False,
        updated_at=bindparam("c_now"),
    )
    .returning(
        tasks.c.project_id, tasks.c.kind, tasks.c.attempts, tasks.c.max_attempts,
        tasks.c.input, tasks.c.review, tasks.c.checkpoint, tasks.c.key_id,
    )
)  # fmt: skip
# The SET clause comes from the parameters passed (column names); g_* guard the lease.
_GUARDED = (
    update(tasks)
    .where(tasks.c.id == bindparam("g_id"), tasks.c.lease_token == bindparam("g_token"), tasks.c.status == RUNNING)
    .returning(tasks.c.cancel_requested)
)


class LeaseStore:
    def __init__(self, engine: AsyncEngine, bus: LocalBus, lease_s: float, clock: Clock) -> None:
        self._engine = engine
        self._bus = bus
        self._lease = timedelta(seconds=lease_s)
        self._clock = clock

    async def claim(self, task_id: str, worker: str) -> Lease | None:
        """Take the task, or None when this message is a duplicate (claimed, finished or cancelled)."""
        now = self._clock.now()
        token = uuid.uuid4().hex
        params = {"c_id": task_id, "c_now": now, "c_until": now + self._lease, "c_token": token}
        async with self._engine.begin() as conn:
            row = (await conn.execute(_CLAIM, params)).mappings().first()
            if row is None:
                return None
            data = {"attempt": row["attempts"], "worker": worker}
            event = await insert_event(conn, task_id, row["project_id"], "task_started", data, now)
        self._bus.publish(event)
        return Lease(
            task_id, token, row["project_id"], row["kind"], row["attempts"], row["max_attempts"],
            row["input"], row["review"], row["checkpoint"], row["key_id"],
        )  # fmt: skip

    async def _write(
        self, lease: Lease, values: dict[str, Any], event_type: str | None = None, data: dict[str, Any] | None = None
    ) -> bool:
        """Apply ``values`` while the lease holds and append the event; returns ``cancel_requested``."""
        now = self._clock.now()
        params = {**values, "updated_at": now, "g_id": lease.task_id, "g_token": lease.token}
        event: TaskEvent | None = None
        async with self._engine.begin() as conn:
            cancel_requested = (await conn.execute(_GUARDED, params)).scalar()
            if cancel_requested is None:
                raise LeaseLost(f"task {lease.task_id} lease {lease.token} is no longer held")
            if event_type is not None:
                event = await insert_event(conn, lease.task_id, lease.project_id, event_type, data, now)
        if event is not None:
            self._bus.publish(event)
        return bool(cancel_requested)

    async def heartbeat(self, lease: Lease) -> bool:
        now = self._clock.now()
        return await self._write(lease, {"heartbeat_at": now, "lease_expires_at": now + self._lease})

    async def step(self, lease: Lease, name: str, progress: int) -> bool:
        data = {"step": name, "progress": progress}
        return await self._write(lease, {"current_step": name, "progress": progress}, "task_progress", data)

    async def emit(self, lease: Lease, type_: str, data: dict[str, Any] | None) -> bool:
        return await self._write(lease, {}, type_, data)

    async def save_checkpoint(self, lease: Lease, state: Any) -> bool:
        return await self._write(lease, {"checkpoint": state})

    async def succeed(self, lease: Lease, result: Any) -> None:
        now = self._clock.now()
        values = {"status": SUCCEEDED, "result": result, "progress": 100, "finished_at": now, "lease_token": None}
        await self._write(lease, values, "task_succeeded", {"attempt": lease.attempt})

    async def fail(self, lease: Lease, error: dict[str, Any]) -> None:
        now = self._clock.now()
        values = {"status": FAILED, "error": error, "finished_at": now, "lease_token": None}
        await self._write(lease, values, "task_failed", error)

    async def cancelled(self, lease: Lease) -> None:
        now = self._clock.now()
        values = {"status": CANCELLED, "finished_at": now, "lease_token": None}
        await self._write(lease, values, "task_cancelled", {"by": "request", "step": None})

    async def pause(self, lease: Lease, interrupt_data: Any) -> None:
        values = {
            "status": REVIEWING, "need_review": True, "interrupt_data": interrupt_data, "lease_token": None,
            "review": None,
        }  # fmt: skip
        await self._write(lease, values, "task_need_review", {"interrupt_data": interrupt_data})

    async def retry_later(self, lease: Lease, error: dict[str, Any]) -> None:
        """Back to pending after a transient error; the retry message will claim it again."""
        values = {"status": PENDING, "error": error, "lease_token": None, "lease_expires_at": None}
        await self._write(lease, values, "task_retry", {**error, "attempt": lease.attempt})

    async def release(self, lease: Lease, reason: str) -> None:
        """Give the task back unfinished (worker shutting down); this attempt does not count."""
        values = {"status": PENDING, "lease_token": None, "lease_expires_at": None, "attempts": lease.attempt - 1}
        await self._write(lease, values, "task_released", {"reason": reason, "attempt": lease.attempt})

    async def expire_unrun(self, task_id: str, reason: str) -> None:
        """Fail a task whose message was dropped unrun (too old)."""
        now = self._clock.now()
        error = {"type": "expired", "message": reason, "hint": "submit it again; raise tasks.max_age_s if needed"}
        async with self._engine.begin() as conn:
            row = (
                await conn.execute(
                    update(tasks)
                    .where(tasks.c.id == task_id, tasks.c.status == PENDING)
                    .values(status=FAILED, error=error, finished_at=now, updated_at=now)
                    .returning(tasks.c.project_id)
                )
            ).first()
            event = await insert_event(conn, task_id, row[0], "task_failed", error, now) if row else None
        if event is not None:
            self._bus.publish(event)

    async def reap(self, pending_requeue_s: float, limit: int = 500) -> Reaped:
        """Tasks whose worker died go back to pending (to be enqueued) or, out of attempts, fail.

        Safe with several reapers: each change is guarded by the lease token (or
        ``updated_at``) it saw, so only one reaper acts on a task.
        """
        now = self._clock.now()
        stale = now - timedelta(seconds=pending_requeue_s)
        expired_q = (
            select(tasks.c.id, tasks.c.kind, tasks.c.project_id, tasks.c.lease_token, tasks.c.attempts)
            .add_columns(tasks.c.max_attempts, tasks.c.heartbeat_at)
            .where(tasks.c.status == RUNNING, tasks.c.lease_expires_at < now)
            .limit(limit)
        )
        lost = (
            select(tasks.c.id)
            .where(tasks.c.status == PENDING, tasks.c.updated_at < stale)
            .order_by(tasks.c.updated_at)
            .limit(limit)
        )
        # One statement; a concurrent reaper re-checks ``updated_at`` and skips what this one touched.
        touch_lost = (
            update(tasks)
            .where(tasks.c.id.in_(lost.scalar_subquery()), tasks.c.status == PENDING, tasks.c.updated_at < stale)
            .values(updated_at=now)
            .returning(tasks.c.id, tasks.c.kind)
        )
        async with self._engine.connect() as conn:
            expired = list((await conn.execute(expired_q)).mappings())
        requeue: list[tuple[str, str]] = []
        failed: list[str] = []
        published: list[TaskEvent] = []
        for row in expired:
            exhausted = row["attempts"] >= row["max_attempts"]
            guard = and_(tasks.c.id == row["id"], tasks.c.status == RUNNING, tasks.c.lease_token == row["lease_token"])
            if exhausted:
                error = {
                    "type": "worker_lost",
                    "message": f"the worker died {row['attempts']} times running this task; "
                    f"last seen {utc_iso(row['heartbeat_at'])}",
                    "hint": "check the worker logs around that time (out of memory? killed?); "
                    "raise tasks.max_attempts to allow more tries",
                }
                values: dict[str, Any] = {"status": FAILED, "error": error, "finished_at": now, "lease_token": None}
                event_type, data = "task_failed", error
            else:
                values = {"status": PENDING, "lease_token": None, "lease_expires_at": None}
                event_type, data = "task_requeued", {"reason": "lease expired", "attempts": row["attempts"]}
            async with self._engine.begin() as conn:
                done = await conn.execute(update(tasks).where(guard).values(**values, updated_at=now))
                if done.rowcount != 1:
                    continue
                published.append(await insert_event(conn, row["id"], row["project_id"], event_type, data, now))
            if exhausted:
                failed.append(row["id"])
            else:
                requeue.append((row["id"], row["kind"]))
        async with self._engine.begin() as conn:
            requeue.extend((task_id, kind) for task_id, kind in (await conn.execute(touch_lost)).all())
        for event in published:
            self._bus.publish(event)
        return Reaped(requeue, failed)
