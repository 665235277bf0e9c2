"""What a running task sees: its input, attempt and review, and the calls that report progress.

Every call writes under the task's lease. A task that was asked to cancel
stops at its next step boundary: :meth:`TaskContext.step` and
:meth:`TaskContext.check_cancelled` raise :class:`Cancelled`, which the
executor turns into the ``cancelled`` status.
"""

from __future__ import annotations

import logging
import os
import signal
from contextvars import Token
from typing import Any, NoReturn

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import NoOpTracer, Span, Tracer

from .leases import Lease, LeaseStore

log = logging.getLogger("aitp.agents.context")


class Cancelled(Exception):
    """The task was asked to cancel; raised at a step boundary."""


class Paused(Exception):
    """The task is waiting for a human review; it resumes when ``POST /api/tasks/{id}/review`` answers."""


class TaskContext:
    def __init__(
        self,
        lease: Lease,
        leases: LeaseStore,
        *,
        crash_after_checkpoint: bool = False,
        tracer: Tracer | None = None,
    ) -> None:
        self._lease = lease
        self._leases = leases
        self.cancel_requested = False
        # Chaos testing (tasks.crash_after_checkpoint_kinds): this process dies like `kill -9` at the first
        # step boundary after a checkpoint, so every execution finishes exactly one step.
        self._crash_after_checkpoint = crash_after_checkpoint
        self._checkpointed = False
        self._checkpoint = lease.checkpoint
        # Each step is a span, current until the next step starts, so the step's model calls nest in it.
        self._tracer = tracer or NoOpTracer()
        self._step: tuple[Span, Token[Context]] | None = None

    @property
    def task_id(self) -> str:
        return self._lease.task_id

    @property
    def project_id(self) -> str:
        return self._lease.project_id

    @property
    def key_id(self) -> str:
        """The key that submitted the task; the task's model calls spend under it and its project."""
        return self._lease.key_id

    @property
    def kind(self) -> str:
        return self._lease.kind

    @property
    def attempt(self) -> int:
        """1 on the first execution; retries, crashes and resumes after review count up."""
        return self._lease.attempt

    @property
    def review(self) -> dict[str, Any] | None:
        """The review decision ``{action, feedback, corrected_body}`` once the task was reviewed."""
        return self._lease.review

    @property
    def checkpoint(self) -> Any:
        """What the last :meth:`save_checkpoint` stored (None at first): where a resumed task picks up."""
        return self._checkpoint

    def check_cancelled(self) -> None:
        if self.cancel_requested:
            raise Cancelled

    async def step(self, name: str, progress: int) -> None:
        """Start step ``name`` at ``progress`` percent (0 to 100); stops here when cancel was requested."""
        self.check_cancelled()
        if self._crash_after_checkpoint and self._checkpointed:
            log.warning("chaos: killing this process before step %s", name, extra={"task_id": self.task_id})
            os.kill(os.getpid(), signal.SIGKILL)
        progress = max(0, min(100, int(progress)))
        self.cancel_requested = await self._leases.step(self._lease, name[:200], progress) or self.cancel_requested
        self.check_cancelled()
        self.end_step()
        span = self._tracer.start_span(f"step {name[:80]}", attributes={"aitp.task.step": name[:200]})
        self._step = (span, otel_context.attach(trace.set_span_in_context(span)))

    def end_step(self) -> None:
        """End the current step's span (the executor calls it when the execution ends)."""
        if self._step is not None:
            span, token = self._step
            self._step = None
            if trace.get_current_span() is span:  # else it was made current in another task's context: gone with it
                otel_context.detach(token)
            span.end()

    async def emit(self, type_: str, data: dict[str, Any] | None = None) -> None:
        """Append a notice to the task's event log (shown on its SSE stream)."""
        self.cancel_requested = await self._leases.emit(self._lease, type_, data) or self.cancel_requested

    async def save_checkpoint(self, state: Any) -> None:
        """Store ``state`` durably (JSON) under the lease; a resumed execution reads it as :attr:`checkpoint`."""
        await self._leases.save_checkpoint(self._lease, state)
        self._checkpoint = state
        self._checkpointed = True

    async def pause_for_review(self, interrupt_data: Any) -> NoReturn:
        """Stop here, durably, until a reviewer answers; the task then runs again with :attr:`review` set."""
        await self._leases.pause(self._lease, interrupt_data)
        raise Paused
