"""Task REST API under ``/api/tasks``: each handler parses the request, calls :class:`TaskService`, answers.

The rules (roles, project isolation, validation of kinds and reviews) live in
the service, which the MCP tools call too; only the HTTP parts are here:
the ``Idempotency-Key`` header, status codes, SSE and the WebSocket.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute

from core.http import JSONResponse, read_json
from core.identity.middleware import Authenticate, authorization_of, principal_of
from core.validation import INT64_MAX, bounded_int, header_text, parse, query_int

from .service import IDEMPOTENCY_KEY_CHARS, MAX_OFFSET, MAX_PAGE, ReviewSpec, SubmitSpec, TaskService
from .stream import KeyWatch, event_stream, notifications


def task_routes(tasks: TaskService, authenticate: Authenticate) -> list[BaseRoute]:
    """The routes; ``authenticate`` looks the key of an open stream up again while it runs."""
    runtime = tasks.runtime

    async def submit(request: Request) -> Response:
        header_key = header_text(request.headers, "Idempotency-Key", IDEMPOTENCY_KEY_CHARS)
        spec = parse(SubmitSpec, await read_json(request))
        view, created = await tasks.submit(
            principal_of(request), spec.kind, spec.input, spec.idempotency_key or header_key, spec.priority
        )
        return JSONResponse(view, status_code=201 if created else 200)

    async def get_task(request: Request) -> Response:
        return JSONResponse(await tasks.get(principal_of(request), request.path_params["task_id"]))

    async def list_tasks(request: Request) -> Response:
        params = request.query_params
        found = await tasks.list(
            principal_of(request),
            status=params.get("status") or None,
            kind=params.get("kind") or None,
            limit=query_int(params, "limit", 50, 1, MAX_PAGE),
            offset=query_int(params, "offset", 0, 0, MAX_OFFSET),
            project=params.get("project") or None,
        )
        return JSONResponse(found)

    async def cancel(request: Request) -> Response:
        return JSONResponse(await tasks.cancel(principal_of(request), request.path_params["task_id"]))

    async def review(request: Request) -> Response:
        spec = parse(ReviewSpec, await read_json(request))
        reviewed = await tasks.review(
            principal_of(request), request.path_params["task_id"], spec.action, spec.feedback, spec.corrected_body
        )
        return JSONResponse(reviewed)

    async def stats(request: Request) -> Response:
        return JSONResponse(await tasks.stats(principal_of(request), request.query_params.get("project") or None))

    async def events(request: Request) -> Response:
        principal = principal_of(request)
        # Checked before the stream starts: once it has, an error can only cut it off mid-body.
        last = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
        if last:
            bounded_int(last, "Last-Event-ID", "last_event_id", 0, INT64_MAX)
        key = KeyWatch(
            authenticate,
            authorization_of(request.scope),
            principal,
            runtime.settings.stream_key_recheck_s,
            runtime.clock,
        )
        return await event_stream(request, runtime, principal.scope(), key)

    return [
        Route("/api/tasks", submit, methods=["POST"]),
        Route("/api/tasks", list_tasks, methods=["GET"]),
        Route("/api/tasks/stats", stats, methods=["GET"]),
        Route("/api/tasks/{task_id}", get_task, methods=["GET"]),
        Route("/api/tasks/{task_id}/cancel", cancel, methods=["POST"]),
        Route("/api/tasks/{task_id}/review", review, methods=["POST"]),
        Route("/api/tasks/{task_id}/events", events, methods=["GET"]),
        WebSocketRoute("/api/ws", notifications(authenticate, runtime)),
    ]
