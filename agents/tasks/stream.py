"""Live task events: SSE per task (``GET /api/tasks/{id}/events``) and the project WebSocket (``/api/ws``).

SSE subscribes to the live bus first, then replays the log after
``Last-Event-ID`` (header, or ``?last_event_id=``), so no event falls in
between; each live event of the task makes it read the log again, which keeps
the order and fills any live event that was lost. The stream ends after the
task's final event.

A stream outlives the request that authenticated it, so each one looks its
key up again every ``tasks.stream_key_recheck_s`` (the same indexed read as a
request) and at the key's expiry: a revoked or expired key ends SSE with a
final ``event: error`` and closes the WebSocket with code 4401, both naming
the cause.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

import orjson
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.websockets import WebSocket, WebSocketDisconnect

from core.clock import Clock
from core.errors import APIError, InvalidRequest, Unauthorized
from core.identity.middleware import Authenticate, authorization_of, close_reason, principal_of
from core.identity.principal import Principal

from .events import NOTIFY_TYPES, TERMINAL_TYPES, TaskEvent
from .tables import FINISHED

if TYPE_CHECKING:
    from .runtime import TaskRuntime

log = logging.getLogger("aitp.agents.stream")

ALL_PROJECTS = "*"  # ?project=* on /api/ws, for the server admin key
KEY_REFUSED = 4401  # WebSocket close code: the key was revoked or expired (4000-4999 belong to the application)


class KeyWatch:
    """The key of one open stream, looked up again on an interval and at its expiry.

    ``refused()`` is cheap to call often: it reads the database only when a
    check is due, and answers the error that must end the stream, or None.
    """

    def __init__(
        self, authenticate: Authenticate, authorization: str | None, principal: Principal, every: float, clock: Clock
    ):
        self._authenticate = authenticate
        self._authorization = authorization
        self._every = every
        self._now = asyncio.get_running_loop().time
        self._next = self._now() + every
        self._expires: float | None = None
        if principal.expires_at is not None:
            left = (principal.expires_at - clock.now()).total_seconds()
            self._expires = self._now() + max(0.0, left) + 0.01  # just past it, so the lookup sees it expired

    def due_in(self) -> float:
        """Seconds until the next check (0: due now)."""
        due = self._next if self._expires is None else min(self._next, self._expires)
        return max(0.0, due - self._now())

    async def refused(self) -> Unauthorized | None:
        if self.due_in() > 0:
            return None
        self._next = self._now() + self._every
        if self._expires is not None and self._expires <= self._now():
            self._expires = None  # checked now; should the clocks disagree, the interval checks again
        try:
            await self._authenticate(self._authorization)
        except Unauthorized as exc:
            return exc
        except (SQLAlchemyError, OSError) as exc:
            # The key was valid at the last look; a database hiccup should not drop every open stream.
            log.warning("could not re-check a stream's key (%s); trying again in %.1f s", exc, self._every)
        return None


def _sse(event: TaskEvent) -> bytes:
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (event.id, event.type.encode(), orjson.dumps(event.to_dict()))


def _last_event_id(request: Request) -> int:
    raw = request.headers.get("last-event-id") or request.query_params.get("last_event_id") or "0"
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest(
            f"Last-Event-ID must be an event id (a whole number), got {raw!r}", param="last_event_id"
        ) from None
    if value < 0:
        raise InvalidRequest(f"Last-Event-ID must not be negative, got {value}", param="last_event_id")
    return value


def _sse_error(error: APIError) -> bytes:
    # No id: the client's Last-Event-ID keeps pointing at the last task event it saw.
    return b"event: error\ndata: %s\n\n" % orjson.dumps(error.body())


async def event_stream(request: Request, runtime: TaskRuntime, project_id: str | None, key: KeyWatch) -> Response:
    task_id = request.path_params["task_id"]
    task = await runtime.store.get(task_id, project_id)
    after = _last_event_id(request)
    store, keepalive = runtime.store, runtime.settings.sse_keepalive_s

    async def body() -> AsyncIterator[bytes]:
        last = after
        with runtime.bus.subscribe(task["project_id"]) as sub:

            async def catch_up() -> AsyncIterator[TaskEvent]:
                nonlocal last
                while batch := await store.events_after(task_id, last):
                    for event in batch:
                        last = event.id
                        yield event

            yield b": connected\n\n"
            while True:
                ended = False
                async for event in catch_up():
                    yield _sse(event)
                    ended = ended or event.type in TERMINAL_TYPES
                if ended:
                    return
                if (await store.get(task_id, None))["status"] in FINISHED:
                    # It finished after the read above: its final events are in the log now.
                    async for event in catch_up():
                        yield _sse(event)
                    return
                # Wait for this task's next live event; on silence send a keep-alive and read the log anyway.
                deadline = asyncio.get_running_loop().time() + keepalive
                while (left := deadline - asyncio.get_running_loop().time()) > 0:
                    if (refused := await key.refused()) is not None:
                        yield _sse_error(refused)
                        return
                    live = await sub.get(min(left, key.due_in()))
                    if live is not None and live.task_id == task_id and live.id > last:
                        break
                else:
                    yield b": keep-alive\n\n"

    headers = {"cache-control": "no-cache", "x-accel-buffering": "no"}
    return StreamingResponse(body(), media_type="text/event-stream", headers=headers)


def notifications(authenticate: Authenticate, runtime: TaskRuntime) -> Callable[[WebSocket], Awaitable[None]]:
    """``/api/ws``: pushes the caller's project's task notifications as JSON objects.

    The server admin key may name a project (``?project=``), or ``*`` for all of them.

    Browsers cannot set headers on a WebSocket, so the key may come as ``?token=``.
    When the key is revoked or expires, the socket gets ``{"type": "error",
    "error": {...}}`` and closes with code 4401.
    """

    async def endpoint(websocket: WebSocket) -> None:
        # The middleware accepted the key (header or ?token=); this socket looks it up again while open.
        principal = principal_of(websocket)
        key = KeyWatch(
            authenticate,
            authorization_of(websocket.scope),
            principal,
            runtime.settings.stream_key_recheck_s,
            runtime.clock,
        )
        project: str | None = websocket.query_params.get("project") if principal.root else None
        # The server admin key may watch every project at once (the console's "all projects").
        project = None if project == ALL_PROJECTS else project or principal.project_id
        await websocket.accept()
        with runtime.bus.subscribe(project) as sub:
            listener = asyncio.create_task(_until_closed(websocket))
            try:
                await websocket.send_json({"type": "subscribed", "project": project})
                while not listener.done():
                    if (refused := await key.refused()) is not None:
                        await websocket.send_json({"type": "error", **refused.body()})
                        await websocket.close(code=KEY_REFUSED, reason=close_reason(refused))
                        return
                    event = await sub.get(min(1.0, key.due_in()))
                    if event is not None and event.type in NOTIFY_TYPES:
                        await websocket.send_text(orjson.dumps(_notice(event)).decode())
            except WebSocketDisconnect:
                pass
            finally:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect):
                    await listener

    return endpoint


def _notice(event: TaskEvent) -> dict[str, object]:
    return {
        "type": event.type,
        "task_id": event.task_id,
        "project": event.project_id,
        "event_id": event.id,
        "data": event.data,
        "at": event.created_at,
    }


async def _until_closed(websocket: WebSocket) -> None:
    """Read (and ignore) what the client sends until it goes away."""
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
