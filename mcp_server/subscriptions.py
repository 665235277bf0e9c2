"""Resource-updated notifications: a subscribed ``task://{id}`` is announced when its task changes status.

MCP has two ways to subscribe, one per protocol generation, and aitp serves both:

- 2025-11-25: ``resources/subscribe`` on a session; the notification goes out on that
  session's standing stream.
- 2026-07-28: ``subscriptions/listen``, whose response is the stream; the SDK's listen
  handler filters the server's events to the URIs the client asked for.

Either way a client may only watch tasks its key can read: a subscription to another
project's task (or to no task at all) is refused, so the timing of a stranger's work
cannot be observed. Events come from the platform's task bus, which in distributed mode
relays every worker's events through Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import mcp_types as types
from mcp.server import MCPServer
from mcp.server.context import ServerRequestContext
from mcp.server.session import ServerSession
from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler, ResourceUpdated
from mcp.shared.exceptions import MCPError

from agents.tasks.events import TERMINAL_TYPES
from core.errors import APIError
from core.identity.principal import Principal

from .platform import Platform

# Events after which ``task://{id}`` reads differently (status, review, result).
STATUS_EVENTS = frozenset(
    {
        "task_started",
        "task_need_review",
        "task_reviewed",
        "task_requeued",
        "task_succeeded",
        "task_failed",
        "task_cancelled",
    }
)
_PREFIX = "task://"
log = logging.getLogger("aitp.mcp.subscriptions")

PrincipalOf = Callable[[object], Principal]  # a lowlevel request (HTTP) or None (stdio) -> its caller


def task_id_of(uri: str) -> str | None:
    """The task id of ``task://{id}`` (not of its case exports, which change only on review)."""
    if not uri.startswith(_PREFIX):
        return None
    rest = uri[len(_PREFIX) :]
    return rest if rest and "/" not in rest and len(rest) <= 64 else None


class TaskWatch:
    """Relays task status changes to the MCP clients that subscribed to them."""

    def __init__(self, platform: Platform, principal_of: PrincipalOf) -> None:
        self.bus = InMemorySubscriptionBus()
        self._platform = platform
        self._principal_of = principal_of
        self._listen = ListenHandler(self.bus)
        # uri -> sessions of the 2025-11-25 generation that subscribed to it.
        self._sessions: dict[str, set[ServerSession]] = {}

    def install(self, server: MCPServer) -> None:
        """Serve both generations' subscription requests on ``server`` (built on :attr:`bus`)."""
        lowlevel = server._lowlevel_server  # the SDK has no public hook for these handlers
        lowlevel.add_request_handler("resources/subscribe", types.SubscribeRequestParams, self._subscribe)
        lowlevel.add_request_handler("resources/unsubscribe", types.UnsubscribeRequestParams, self._unsubscribe)
        lowlevel.add_request_handler("subscriptions/listen", types.SubscriptionsListenRequestParams, self._listen_to)

    async def _readable(self, ctx: ServerRequestContext[Any, Any], uri: str) -> bool:
        task_id = task_id_of(uri)
        if task_id is None:
            return False
        try:
            await self._platform.tasks.get(self._principal_of(ctx.request), task_id)
        except APIError:
            return False
        return True

    async def _subscribe(self, ctx: ServerRequestContext[Any, Any], params: types.SubscribeRequestParams) -> Any:
        uri = str(params.uri)
        if not await self._readable(ctx, uri):
            raise MCPError(
                types.INVALID_PARAMS,
                f"cannot subscribe to {uri}: only task://{{id}} of a task of this key's project has updates",
            )
        self._sessions.setdefault(uri, set()).add(ctx.session)
        return types.EmptyResult()

    async def _unsubscribe(self, ctx: ServerRequestContext[Any, Any], params: types.UnsubscribeRequestParams) -> Any:
        uri = str(params.uri)
        sessions = self._sessions.get(uri)
        if sessions is not None:
            sessions.discard(ctx.session)
            if not sessions:
                del self._sessions[uri]
        return types.EmptyResult()

    async def _listen_to(
        self, ctx: ServerRequestContext[Any, Any], params: types.SubscriptionsListenRequestParams
    ) -> types.SubscriptionsListenResult:
        wanted = params.notifications.resource_subscriptions or []
        allowed = [uri for uri in wanted if await self._readable(ctx, uri)]
        if len(allowed) != len(wanted):
            # The acknowledgement lists what is honoured, so the client sees what was left out.
            notifications = params.notifications.model_copy(update={"resource_subscriptions": allowed or None})
            params = params.model_copy(update={"notifications": notifications})
        return await self._listen(ctx, params)

    async def announce(self, task_id: str, *, final: bool = False) -> None:
        """Tell the task's subscribers it changed; after its final change nobody needs to watch it any more."""
        uri = _PREFIX + task_id
        await self.bus.publish(ResourceUpdated(uri=uri))
        sessions = self._sessions.pop(uri, set()) if final else self._sessions.get(uri, set())
        for session in list(sessions):
            try:
                await session.send_resource_updated(uri)
            except Exception as exc:  # a gone session must not stop the others' notifications
                log.debug("dropping subscriber of %s: %s", uri, exc)
                sessions.discard(session)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Relay the platform's task events while the server runs."""
        task = asyncio.create_task(self._relay(), name="aitp-mcp-task-watch")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _relay(self) -> None:
        with self._platform.bus.subscribe(None) as events:
            while True:
                event = await events.get(timeout=30.0)
                if event is not None and event.type in STATUS_EVENTS:
                    await self.announce(event.task_id, final=event.type in TERMINAL_TYPES)
