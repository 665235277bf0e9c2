"""``aitp mcp --url``: a stdio MCP server that relays to a running aitp's ``/mcp``.

For teams: the IDE starts ``aitp mcp --url https://aitp.example/mcp`` and talks
stdio; every call goes to the shared server with the developer's own key, so
keys, roles, budgets and project isolation are the server's. Tool lists, tool
calls (with their progress), resources and elicitation (the reviewer's answer)
pass through unchanged.
"""

from __future__ import annotations

import contextvars
from typing import Any

import httpx2
import mcp_types as types
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

# The stdio request being relayed, so that the remote's questions reach the right person.
_current: contextvars.ContextVar[ServerRequestContext[Any] | None] = contextvars.ContextVar(
    "aitp_bridge_request", default=None
)


async def _ask_locally(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
    local = _current.get()
    if local is None or not isinstance(params, types.ElicitRequestFormParams):
        return types.ElicitResult(action="decline")
    return await local.session.elicit(params.message, params.requested_schema, related_request_id=local.request_id)


def build_bridge(remote: Client) -> Server[Any]:
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

    return Server(
        name="aitp",
        title="aitp test platform (relayed)",
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_resources=list_resources,
        on_list_resource_templates=list_templates,
        on_read_resource=read_resource,
    )


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
    async with Client(transport, elicitation_callback=_ask_locally) as remote:
        # Fail at start, with the server's words, rather than on the IDE's first call.
        await remote.list_tools()
        bridge = build_bridge(remote)
        async with stdio_server() as (read, write):
            await bridge.run(read, write, bridge.create_initialization_options())
