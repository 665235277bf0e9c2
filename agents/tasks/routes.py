"""Task REST API: submit, read, list, cancel, review and stats under ``/api/tasks``.

Any key of a project reads its tasks; submitting, cancelling and reviewing
need a member or admin key. Another project's task answers 404, exactly like
a missing one. The server admin key sees every project.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

import redis
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute

from core.errors import InvalidRequest
from core.http import JSONResponse, read_json
from core.identity.middleware import Authenticate, authorization_of, principal_of
from core.identity.principal import Principal
from core.validation import INT64_MAX, Text, bounded_int, header_text, parse, query_int

from .runtime import TaskRuntime
from .store import task_view
from .stream import KeyWatch, event_stream, notifications
from .tables import STATUSES

log = logging.getLogger("aitp.agents.routes")

IDEMPOTENCY_KEY_CHARS = 200  # tasks.idempotency_key is String(200)


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


def require_writer(principal: Principal) -> None:
    principal.require_role("member", "it can read tasks but not submit, cancel or review them")


def task_routes(authenticate_header: Authenticate, runtime: TaskRuntime) -> list[BaseRoute]:
    store = runtime.store

    async def authenticate(request: Request) -> Principal:
        return principal_of(request)

    def scope(principal: Principal) -> str | None:
        return principal.scope()

    def enqueue(task_id: str, kind: str) -> None:
        try:
            runtime.enqueue(task_id, kind)
        except (redis.RedisError, OSError) as exc:
            # The row is durable: the reaper enqueues pending tasks nobody picked up.
            log.error("could not enqueue task %s (%s); the reaper will retry", task_id, exc)

    async def submit(request: Request) -> Response:
        principal = await authenticate(request)
        require_writer(principal)
        header_key = header_text(request.headers, "Idempotency-Key", IDEMPOTENCY_KEY_CHARS)
        spec = parse(SubmitSpec, await read_json(request))
        key = spec.idempotency_key or header_key
        task_input = runtime.kinds.validate(spec.kind, spec.input)
        row, created = await store.submit(
            project_id=principal.project_id,
            key_id=principal.key_id,
            kind=spec.kind,
            input=task_input,
            idempotency_key=key,
            priority=spec.priority,
            max_attempts=runtime.settings.max_attempts,
        )
        if created:
            enqueue(row["id"], row["kind"])
        return JSONResponse(task_view(row), status_code=201 if created else 200)

    async def get_task(request: Request) -> Response:
        principal = await authenticate(request)
        return JSONResponse(task_view(await store.get(request.path_params["task_id"], scope(principal))))

    async def list_tasks(request: Request) -> Response:
        principal = await authenticate(request)
        params = request.query_params
        status = params.get("status") or None
        if status is not None and status not in STATUSES:
            raise InvalidRequest(
                f"query parameter 'status' must be one of {', '.join(STATUSES)}, got {status!r}", param="status"
            )
        kind = params.get("kind") or None
        if kind is not None:
            runtime.kinds.get(kind)
        limit = query_int(params, "limit", 50, 1, 500)
        offset = query_int(params, "offset", 0, 0, 10**9)
        total, rows = await store.find(scope(principal), status, kind, limit, offset)
        return JSONResponse({"total": total, "items": [task_view(r) for r in rows], "limit": limit, "offset": offset})

    async def cancel(request: Request) -> Response:
        principal = await authenticate(request)
        require_writer(principal)
        row = await store.cancel(request.path_params["task_id"], scope(principal))
        return JSONResponse(task_view(row))

    async def review(request: Request) -> Response:
        principal = await authenticate(request)
        require_writer(principal)
        task_id = request.path_params["task_id"]
        current = await store.get(task_id, scope(principal))  # 404 before a 400 about the body
        decision = parse(ReviewSpec, await read_json(request)).model_dump(mode="json")
        check = runtime.kinds.get(current["kind"]).check_review
        if check is not None and current["status"] == "reviewing":
            check(decision, current["input"], current["interrupt_data"])
        row = await store.review(task_id, scope(principal), decision)
        enqueue(row["id"], row["kind"])
        return JSONResponse(task_view(row))

    async def stats(request: Request) -> Response:
        principal = await authenticate(request)
        return JSONResponse(await store.stats(scope(principal)))

    async def events(request: Request) -> Response:
        principal = await authenticate(request)
        # Checked before the stream starts: once it has, an error can only cut it off mid-body.
        last = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
        if last:
            bounded_int(last, "Last-Event-ID", "last_event_id", 0, INT64_MAX)
        key = KeyWatch(
            authenticate_header,
            authorization_of(request.scope),
            principal,
            runtime.settings.stream_key_recheck_s,
            runtime.clock,
        )
        return await event_stream(request, runtime, scope(principal), key)

    return [
        Route("/api/tasks", submit, methods=["POST"]),
        Route("/api/tasks", list_tasks, methods=["GET"]),
        Route("/api/tasks/stats", stats, methods=["GET"]),
        Route("/api/tasks/{task_id}", get_task, methods=["GET"]),
        Route("/api/tasks/{task_id}/cancel", cancel, methods=["POST"]),
        Route("/api/tasks/{task_id}/review", review, methods=["POST"]),
        Route("/api/tasks/{task_id}/events", events, methods=["GET"]),
        WebSocketRoute("/api/ws", notifications(authenticate_header, runtime)),
    ]
