"""``aitp mcp --url``: a stdio MCP server that relays to a running aitp's ``/mcp``.

For teams: the IDE starts ``aitp mcp --url https://aitp.example/mcp`` and talks
stdio; every call goes to the shared server with the developer's own key, so
keys, roles, budgets and project isolation are the server's. Tool lists, tool
calls (with their progress), resources and elicitation (the reviewer's answer)
pass through unchanged.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx2
import mcp_types as types
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.session import ServerSession
from mcp.server.stdio import stdio_server
from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler, ResourceUpdated
from mcp.shared.exceptions import MCPError

log = logging.getLogger("aitp.mcp.bridge")
# The stdio request being relayed, so that the remote's questions reach the right person.
_current: contextvars.ContextVar[ServerRequestContext[Any] | None] = contextvars.ContextVar(
    "aitp_bridge_request", default=None
)


async def _ask_locally(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
    local = _current.get()
    if local is None or not isinstance(params, types.ElicitRequestFormParams):
        return types.ElicitResult(action="decline")
    return await local.session.elicit(params.message, params.requested_schema, related_request_id=local.request_id)


class Updates:
    """Resource subscriptions relayed: one remote ``subscriptions/listen`` stream per watched URI.

    The local client may speak either generation: ``resources/subscribe`` (its
    updates go to the subscribing session) or ``subscriptions/listen`` (served
    from a local bus). The server decides what may be watched; a URI it does
    not honour is refused locally in the same way.
    """

    def __init__(self, remote: Client, tasks: anyio.abc.TaskGroup) -> None:
        self.bus = InMemorySubscriptionBus()
        self._remote = remote
        self._tasks = tasks
        self._listen = ListenHandler(self.bus)
        self._sessions: dict[str, set[ServerSession]] = {}
        self._watches: dict[str, anyio.CancelScope] = {}

    async def subscribe(self, ctx: ServerRequestContext[Any], params: types.SubscribeRequestParams) -> Any:
        uri = str(params.uri)
        if uri not in self._watches:
            scope, honored = await self._watch([uri])
            if not honored:
                raise MCPError(
                    types.INVALID_PARAMS,
                    f"cannot subscribe to {uri}: only task://{{id}} of a task of this key's project has updates",
                )
            self._watches[uri] = scope
        self._sessions.setdefault(uri, set()).add(ctx.session)
        return types.EmptyResult()

    async def unsubscribe(self, ctx: ServerRequestContext[Any], params: types.UnsubscribeRequestParams) -> Any:
        uri = str(params.uri)
        sessions = self._sessions.get(uri, set())
        sessions.discard(ctx.session)
        if not sessions:
            self._sessions.pop(uri, None)
            if (scope := self._watches.pop(uri, None)) is not None:
                scope.cancel()
        return types.EmptyResult()

    async def listen(
        self, ctx: ServerRequestContext[Any], params: types.SubscriptionsListenRequestParams
    ) -> types.SubscriptionsListenResult:
        wanted = list(params.notifications.resource_subscriptions or [])
        scope, honored = await self._watch(wanted) if wanted else (anyio.CancelScope(), [])
        notifications = params.notifications.model_copy(update={"resource_subscriptions": honored or None})
        try:
            return await self._listen(ctx, params.model_copy(update={"notifications": notifications}))
        finally:
            scope.cancel()

    async def _watch(self, uris: list[str]) -> tuple[anyio.CancelScope, list[str]]:
        """Relay the server's updates of ``uris`` until the scope is cancelled; also the URIs it honoured."""
        acked = anyio.Event()
        honored: list[str] = []
        scope = anyio.CancelScope()

        async def relay() -> None:
            with scope:
                try:
                    async with self._remote.listen(resource_subscriptions=uris) as subscription:
                        if subscription.honored is not None:
                            honored.extend(subscription.honored.resource_subscriptions or [])
                        acked.set()
                        async for event in subscription:
                            uri = getattr(event, "uri", None)
                            if isinstance(uri, str):
                                await self._announce(uri)
                except Exception as exc:  # a lost stream ends the watch; the client subscribes again
                    log.warning("relaying updates of %s stopped: %s", ", ".join(uris), exc)
                finally:
                    acked.set()

        self._tasks.start_soon(relay)
        await acked.wait()
        return scope, honored

    async def _announce(self, uri: str) -> None:
        await self.bus.publish(ResourceUpdated(uri=uri))
        for session in list(self._sessions.get(uri, ())):
            with contextlib.suppress(Exception):  # a gone session must not stop the others' notifications
                await session.send_resource_updated(uri)


def build_bridge(remote: Client, updates: Updates | None = None) -> Server[Any]:
    async def list_tools(ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None) -> Any:
        return await remote.list_tools(cursor=params.cursor if params else None)

    async def call_tool(ctx: ServerRequestContext[Any], params: types.CallToolRequestParams) -> Any:
        async def progress(progress: float, total: float | None, message: str | None) -> None:
            await ctx.session.report_progress(progress, total, message)

        token = _current.set(ctx)
        try:
            return await remote.call_tool(params.name, params.arguments or {}, progress_callback=progress)
        finally:
            _current.reset(token)

    async def list_templates(ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None) -> Any:
        return await remote.list_resource_templates(cursor=params.cursor if params else None)

    async def list_resources(ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None) -> Any:
        return await remote.list_resources(cursor=params.cursor if params else None)

    async def read_resource(ctx: ServerRequestContext[Any], params: types.ReadResourceRequestParams) -> Any:
        return await remote.read_resource(str(params.uri))

    server: Server[Any] = Server(
        name="aitp",
        title="aitp test platform (relayed)",
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_resources=list_resources,
        on_list_resource_templates=list_templates,
        on_read_resource=read_resource,
    )
    if updates is not None:
        server.add_request_handler("resources/subscribe", types.SubscribeRequestParams, updates.subscribe)
        server.add_request_handler("resources/unsubscribe", types.UnsubscribeRequestParams, updates.unsubscribe)
        server.add_request_handler("subscriptions/listen", types.SubscriptionsListenRequestParams, updates.listen)
    return server


class BridgeRefused(RuntimeError):
    """The server would not take this key: the message is the server's own."""


async def _check_key(http: httpx2.AsyncClient, url: str) -> None:
    # The server authenticates before MCP: ask once, so a bad key is reported in its words, not as a protocol error.
    probe = {"jsonrpc": "2.0", "id": 0, "method": "ping"}
    response = await http.post(url, json=probe, headers={"accept": "application/json, text/event-stream"})
    if response.status_code in (401, 403):
        try:
            error = response.json()["error"]
            why = f"{error.get('code')}: {error.get('message')}"
        except (ValueError, KeyError, TypeError):
            why = response.text[:300]
        raise BridgeRefused(f"the server answered {response.status_code} to AITP_API_KEY ({why})")


async def run_bridge(url: str, api_key: str) -> None:
    """Serve stdio until the client closes it, relaying to ``url`` with ``api_key``."""
    http = httpx2.AsyncClient(headers={"authorization": f"Bearer {api_key}"}, timeout=httpx2.Timeout(30, read=600))
    await _check_key(http, url)
    transport = streamable_http_client(url, http_client=http)
    async with Client(transport, elicitation_callback=_ask_locally) as remote, _task_group() as tasks:
        # Fail at start, with the server's words, rather than on the IDE's first call.
        await remote.list_tools()
        bridge = build_bridge(remote, Updates(remote, tasks))
        async with stdio_server() as (read, write):
            await bridge.run(read, write, bridge.create_initialization_options())
        tasks.cancel_scope.cancel()


@contextlib.asynccontextmanager
async def _task_group() -> AsyncIterator[anyio.abc.TaskGroup]:
    async with anyio.create_task_group() as tasks:
        yield tasks
