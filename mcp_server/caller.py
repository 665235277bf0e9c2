"""Who is calling a tool: the principal of the HTTP request, or the one key of a stdio server."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from core.errors import APIError
from core.identity.principal import Principal

SCOPE_KEY = "aitp.principal"
Authenticate = Callable[[str | None], Awaitable[Principal]]


class Caller:
    """Resolves the principal of a tool call.

    Over HTTP the principal rides the ASGI scope, put there by :class:`RequireKey`
    (or by the app's authentication middleware) before any MCP message is read;
    over stdio there is one principal for the process, from ``AITP_API_KEY``.
    """

    def __init__(self, fixed: Principal | None = None) -> None:
        self._fixed = fixed

    def __call__(self, ctx: Context[Any, Any]) -> Principal:
        if self._fixed is not None:
            return self._fixed
        request = ctx.request_context.request
        scope = getattr(request, "scope", None)
        principal = scope.get(SCOPE_KEY) if isinstance(scope, dict) else None
        if not isinstance(principal, Principal):
            # Cannot happen behind RequireKey; refuse rather than guess an identity.
            raise ToolError("this request carries no authenticated aitp key; send Authorization: Bearer sk-aitp-…")
        return principal


class RequireKey:
    """ASGI guard in front of the MCP app: no key, a bad key or a revoked key is a 401 before MCP runs."""

    def __init__(self, app: ASGIApp, authenticate: Authenticate) -> None:
        self.app = app
        self.authenticate = authenticate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        existing = scope.get("principal")
        if isinstance(existing, Principal):
            scope[SCOPE_KEY] = existing
            await self.app(scope, receive, send)
            return
        authorization = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), None)
        try:
            scope[SCOPE_KEY] = await self.authenticate(authorization)
        except APIError as exc:
            response = JSONResponse(exc.body(), status_code=exc.status, headers={"www-authenticate": "Bearer"})
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
