"""Task operations for every interface (REST, MCP, the CLI): submit, read, list, cancel, review and stats.

Any key of a project reads its tasks; submitting, cancelling and reviewing
need a member or admin key. Another project's task answers 404, exactly like
a missing one. The server admin key sees every project. Each method checks
its own arguments, so a caller without an HTTP edge gets the same 400s.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

import redis
from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.errors import InvalidRequest, NotFound
from core.identity.principal import Principal
from core.validation import Text, check_int, check_text, parse

from .runtime import TaskRuntime
from .store import task_view
from .tables import STATUSES

log = logging.getLogger("aitp.agents.tasks.service")

IDEMPOTENCY_KEY_CHARS = 200  # tasks.idempotency_key is String(200)
MAX_PAGE = 500
MAX_OFFSET = 10**9
WRITER = "it can read tasks but not submit, cancel or review them"


class SubmitSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Annotated[str, Text(64, 1)] = Field(description="a registered task kind, e.g. system.sleep")
    input: dict[str, Any] = Field(default_factory=dict, description="validated against the kind's input model")
    idempotency_key: Annotated[str, Text(IDEMPOTENCY_KEY_CHARS, 1)] | None = Field(
        default=None, description="the same key returns the same task"
    )
    priority: int = Field(default=0, ge=-100, le=100)


class ReviewSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["approved", "rejected", "corrected"]
    feedback: Annotated[str, Text(20_000)] | None = None
    corrected_body: Any = None

    @model_validator(mode="after")
    def _corrected_needs_body(self) -> ReviewSpec:
        if self.action == "corrected" and self.corrected_body is None:
            raise ValueError("action 'corrected' needs a corrected_body")
        return self


def _scope(principal: Principal, project: str | None) -> str | None:
    """The project to read: the caller's own, or for the server admin key ``project`` (None: all)."""
    if project is None:
        return principal.scope()
    if not principal.can_read(check_text(project, "project")):
        raise NotFound(f"no project '{project}'; GET /api/projects lists them", code="project_not_found")
    return project


class TaskService:
    def __init__(self, runtime: TaskRuntime) -> None:
        self.runtime = runtime
        self._store = runtime.store

    async def submit(
        self,
        principal: Principal,
        kind: str,
        input: dict[str, Any],
        idempotency_key: str | None = None,
        priority: int = 0,
    ) -> tuple[dict[str, Any], bool]:
        """The new task and True, or the task this idempotency key already made and False."""
        principal.require_role("member", WRITER)
        spec = parse(
            SubmitSpec, {"kind": kind, "input": input, "idempotency_key": idempotency_key, "priority": priority}
        )
        task_input = self.runtime.kinds.validate(spec.kind, spec.input)
        check = self.runtime.kinds.get(spec.kind).check_submit
        if check is not None:
            await check(principal, task_input)
        return await self.start(
            principal, spec.kind, task_input.model_dump(mode="json"), spec.idempotency_key, spec.priority
        )

    async def start(
        self,
        principal: Principal,
        kind: str,
        input: dict[str, Any],
        idempotency_key: str | None = None,
        priority: int = 0,
    ) -> tuple[dict[str, Any], bool]:
        """Store and enqueue a task whose input is valid already: what other services start for their caller."""
        row, created = await self._store.submit(
            project_id=principal.project_id,
            key_id=principal.key_id,
            kind=kind,
            input=input,
            idempotency_key=idempotency_key,
            priority=priority,
            max_attempts=self.runtime.settings.max_attempts,
        )
        if created:
            self._enqueue(row["id"], row["kind"])
        return task_view(row), created

    async def get(self, principal: Principal, task_id: str) -> dict[str, Any]:
        return task_view(await self._store.get(check_text(task_id, "task_id"), principal.scope()))

    async def list(
        self,
        principal: Principal,
        status: str | None = None,
        kind: str | None = None,
        limit: int = 50,
        offset: int = 0,
        project: str | None = None,
    ) -> dict[str, Any]:
        """``{total, items, limit, offset}``, newest first; ``project`` narrows the server admin key's view."""
        if status is not None and status not in STATUSES:
            raise InvalidRequest(
                f"query parameter 'status' must be one of {', '.join(STATUSES)}, got {status!r}", param="status"
            )
        if kind is not None:
            self.runtime.kinds.get(kind)
        check_int(limit, "limit", 1, MAX_PAGE)
        check_int(offset, "offset", 0, MAX_OFFSET)
        total, rows = await self._store.find(_scope(principal, project), status, kind, limit, offset)
        return {"total": total, "items": [task_view(r) for r in rows], "limit": limit, "offset": offset}

    async def cancel(self, principal: Principal, task_id: str) -> dict[str, Any]:
        principal.require_role("member", WRITER)
        return task_view(await self._store.cancel(check_text(task_id, "task_id"), principal.scope()))

    async def review(
        self,
        principal: Principal,
        task_id: str,
        action: str,
        feedback: str | None = None,
        corrected_body: Any = None,
    ) -> dict[str, Any]:
        """Record a reviewer's decision on a task waiting for one, and resume it."""
        principal.require_role("member", WRITER)
        scope = principal.scope()
        current = await self._store.get(check_text(task_id, "task_id"), scope)  # 404 before a 400 about the decision
        decision = parse(
            ReviewSpec, {"action": action, "feedback": feedback, "corrected_body": corrected_body}
        ).model_dump(mode="json")
        check = self.runtime.kinds.get(current["kind"]).check_review
        if check is not None and current["status"] == "reviewing":
            check(decision, current["input"], current["interrupt_data"])
        row = await self._store.review(task_id, scope, decision)
        self._enqueue(row["id"], row["kind"])
        return task_view(row)

    async def stats(self, principal: Principal, project: str | None = None) -> dict[str, Any]:
        return await self._store.stats(_scope(principal, project))

    def _enqueue(self, task_id: str, kind: str) -> None:
        try:
            self.runtime.enqueue(task_id, kind)
        except (redis.RedisError, OSError) as exc:
            # The row is durable: the reaper enqueues pending tasks nobody picked up.
            log.error("could not enqueue task %s (%s); the reaper will retry", task_id, exc)
