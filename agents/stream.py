"""Live task events: SSE per task (``GET /api/tasks/{id}/events``) and the project WebSocket (``/api/ws``).

SSE subscribes to the live bus first, then replays the log after
``Last-Event-ID`` (header, or ``?last_event_id=``), so no event falls in
between; each live event of the task makes it read the log again, which keeps
the order and fills any live event that was lost. The stream ends after the
task's final event.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.websockets import WebSocket, WebSocketDisconnect

from core.errors import APIError, InvalidRequest
from core.identity.principal import Principal

from .events import NOTIFY_TYPES, TERMINAL_TYPES, TaskEvent
from .tables import FINISHED

if TYPE_CHECKING:
    from .runtime import TaskRuntime


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


async def event_stream(request: Request, runtime: TaskRuntime, project_id: str | None) -> Response:
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
                    live = await sub.get(left)
                    if live is not None and live.task_id == task_id and live.id > last:
                        break
                else:
                    yield b": keep-alive\n\n"

    headers = {"cache-control": "no-cache", "x-accel-buffering": "no"}
    return StreamingResponse(body(), media_type="text/event-stream", headers=headers)


def notifications(
    authenticate: Callable[[str | None], Awaitable[Principal]], runtime: TaskRuntime
) -> Callable[[WebSocket], Awaitable[None]]:
    """``/api/ws``: pushes the caller's project's task notifications as JSON objects.

    Browsers cannot set headers on a WebSocket, so the key may come as ``?token=``.
    """

    async def endpoint(websocket: WebSocket) -> None:
        token = websocket.query_params.get("token")
        header = websocket.headers.get("authorization") or (f"Bearer {token}" if token else None)
        try:
            principal = await authenticate(header)
        except APIError as exc:
            await websocket.close(code=1008, reason=exc.message[:120])
            return
        project = websocket.query_params.get("project") if principal.root else None
        project = project or principal.project_id
        await websocket.accept()
        with runtime.bus.subscribe(project) as sub:
            listener = asyncio.create_task(_until_closed(websocket))
            try:
                await websocket.send_json({"type": "subscribed", "project": project})
                while not listener.done():
                    event = await sub.get(1.0)
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
