"""Runs one task message: claim, heartbeat, the kind's code, and the one write that finishes it.

Dramatiq calls :meth:`Executor.run_message` on a worker thread; the task
itself runs as a coroutine on the process's event loop (the server's loop in
embedded mode, a dedicated loop thread in ``aitp worker``), where the
database engine lives.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable
from typing import Any

from dramatiq.middleware import TimeLimitExceeded
from opentelemetry.trace import Span, SpanKind
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError

from core.logging import add_log_context, bind_log_context
from core.settings import TaskSettings
from core.tracing import Tracing

from .broker import time_limit_s
from .context import Cancelled, Paused, TaskContext
from .kinds import KindRegistry, TaskError, TransientError
from .leases import Lease, LeaseLost, LeaseStore
from .metrics import TaskMetrics

log = logging.getLogger("aitp.agents.executor")


class Execution:
    """One message being processed; ``interrupt`` stops its coroutine with a reason."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.task: asyncio.Task[None] | None = None
        self.reason: str | None = None

    def interrupt(self, reason: str) -> None:
        """Safe from any thread."""

        def cancel() -> None:
            if self.reason is None:
                self.reason = reason
            if self.task is not None:
                self.task.cancel()

        self.loop.call_soon_threadsafe(cancel)


class Executor:
    def __init__(
        self,
        kinds: KindRegistry,
        leases: LeaseStore,
        settings: TaskSettings,
        metrics: TaskMetrics,
        loop: asyncio.AbstractEventLoop,
        send: Callable[[str, str], None],
        tracing: Tracing | None = None,
    ) -> None:
        self._kinds = kinds
        self._leases = leases
        self._settings = settings
        self._metrics = metrics
        self._loop = loop
        self._send = send
        self._tracing = tracing or Tracing.disabled()
        self._running: dict[str, Execution] = {}
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"
        self.draining = False

    def run_message(self, kind: str, task_id: str, trace: dict[str, str] | None = None) -> None:
        """Called by the actor on a Dramatiq worker thread; ``trace`` is the submitter's trace context."""
        execution = Execution(self._loop)
        future = asyncio.run_coroutine_threadsafe(self.execute(kind, task_id, execution, trace), self._loop)
        try:
            while True:
                # A bounded wait lets TimeLimit's asynchronous exception reach this thread.
                try:
                    future.result(timeout=0.25)
                    return
                except TimeoutError:
                    continue
        except TimeLimitExceeded:
            execution.interrupt("time_limit")
            with contextlib.suppress(Exception):
                future.result(timeout=30)

    def expire(self, task_id: str, reason: str) -> None:
        """Called by the middleware on a worker thread when a message was dropped unrun."""
        future = asyncio.run_coroutine_threadsafe(self._leases.expire_unrun(task_id, reason), self._loop)
        with contextlib.suppress(Exception):
            future.result(timeout=30)

    async def execute(
        self, kind_name: str, task_id: str, execution: Execution, trace: dict[str, str] | None = None
    ) -> None:
        # This coroutine runs in a context of its own (run_coroutine_threadsafe): the binding ends with it.
        bind_log_context(task_id=task_id, kind=kind_name)
        with self._tracing.tracer.start_as_current_span(
            f"task {kind_name}",
            context=self._tracing.extract(trace),
            kind=SpanKind.CONSUMER,
            attributes={"aitp.task_id": task_id, "aitp.task.kind": kind_name},
        ) as span:
            await self._execute(kind_name, task_id, execution, span)

    async def _execute(self, kind_name: str, task_id: str, execution: Execution, span: Span) -> None:
        if self.draining:
            # This process is stopping: hand the message to another worker instead of starting it.
            self._send(kind_name, task_id)
            return
        kind = self._kinds.get(kind_name)
        try:
            lease = await self._leases.claim(task_id, self.worker_id)
        except (SQLAlchemyError, OSError) as exc:
            # The database is away: retry the message with back-off rather than drop it.
            raise TransientError(f"cannot claim task {task_id}: {exc}") from exc
        if lease is None:
            self._metrics.duplicates.inc()
            log.info("dropped a duplicate message", extra={"task_id": task_id, "kind": kind_name})
            return
        add_log_context(project=lease.project_id)
        execution.task = asyncio.current_task()  # type: ignore[assignment]
        self._running[task_id] = execution
        ctx = TaskContext(
            lease,
            self._leases,
            crash_after_checkpoint=kind_name in self._settings.crash_after_checkpoint_kinds,
            tracer=self._tracing.tracer,
        )
        beat = asyncio.create_task(self._heartbeat(lease, ctx, execution))
        started = time.monotonic()
        outcome = "succeeded"
        try:
            result = await kind.run(ctx, self._kinds.parse(kind_name, lease.input))
            if isinstance(result, BaseModel):
                result = result.model_dump(mode="json")
            await self._leases.succeed(lease, result)
        except Paused:
            outcome = "paused"
        except Cancelled:
            outcome = "cancelled"
            await self._finish(self._leases.cancelled(lease))
        except LeaseLost:
            outcome = "lease_lost"
            log.warning("lost the lease mid-task; another worker owns it now", extra={"task_id": task_id})
        except TransientError as exc:
            outcome = await self._transient(lease, exc)
            if outcome == "retry":
                raise
        except TaskError as exc:
            outcome = "failed"
            error = {"type": exc.type, "message": exc.message, "hint": exc.hint}
            await self._finish(self._leases.fail(lease, error))
        except asyncio.CancelledError:
            outcome = execution.reason or "cancelled_by_loop"
            if outcome == "time_limit":
                limit = time_limit_s(kind, self._settings)
                error = {
                    "type": "time_limit",
                    "message": f"the task ran longer than its time limit of {limit:g} s",
                    "hint": f"raise tasks.time_limits['{kind_name}'] or split the work",
                }
                await self._finish(self._leases.fail(lease, error))
            elif outcome == "shutdown":
                await self._finish(self._leases.release(lease, "worker shutting down"))
                self._send(kind_name, task_id)
            elif outcome != "lease_lost":
                raise
        except Exception as exc:
            outcome = "failed"
            log.exception("task failed", extra={"task_id": task_id, "kind": kind_name})
            error = {
                "type": "internal_error",
                "message": f"{type(exc).__name__}: {exc}",
                "hint": f"see the worker log for task_id {task_id}",
            }
            await self._finish(self._leases.fail(lease, error))
        finally:
            ctx.end_step()
            span.set_attribute("aitp.task.outcome", outcome)
            span.set_attribute("aitp.task.attempt", lease.attempt)
            beat.cancel()
            self._running.pop(task_id, None)
            self._metrics.executions.labels(kind_name, outcome).inc()
            if outcome in ("succeeded", "failed", "cancelled", "time_limit"):
                self._metrics.duration.labels(kind_name).observe(time.monotonic() - started)
            log.info("task execution ended: %s", outcome, extra={"attempt": lease.attempt})

    async def _transient(self, lease: Lease, exc: TransientError) -> str:
        error = {
            "type": "transient_error",
            "message": f"{exc} (attempt {lease.attempt} of {lease.max_attempts})",
            "hint": "it is retried with back-off while attempts remain",
        }
        if lease.attempt >= lease.max_attempts:
            error["hint"] = "no attempts left; submit the task again, or raise tasks.max_attempts"
            await self._finish(self._leases.fail(lease, error))
            return "failed"
        self._metrics.retries.labels(lease.kind).inc()
        await self._leases.retry_later(lease, error)
        return "retry"

    @staticmethod
    async def _finish(write: Any) -> None:
        try:
            await write
        except LeaseLost:
            log.warning("the task's lease was lost before its outcome could be written")

    async def _heartbeat(self, lease: Lease, ctx: TaskContext, execution: Execution) -> None:
        while True:
            await asyncio.sleep(self._settings.heartbeat_s)
            try:
                ctx.cancel_requested = await self._leases.heartbeat(lease) or ctx.cancel_requested
            except LeaseLost:
                log.warning("lease lost; stopping the task", extra={"task_id": lease.task_id})
                execution.interrupt("lease_lost")
                return
            except (SQLAlchemyError, OSError) as exc:
                log.warning("heartbeat failed: %s", exc, extra={"task_id": lease.task_id})

    @property
    def running(self) -> int:
        return len(self._running)

    async def drain(self, grace_s: float) -> None:
        """Let running tasks finish for ``grace_s``, then release the rest (they run again elsewhere)."""
        self.draining = True
        deadline = time.monotonic() + grace_s
        while self._running and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for execution in list(self._running.values()):
            execution.interrupt("shutdown")
        deadline = time.monotonic() + 15
        while self._running and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
