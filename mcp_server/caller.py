"""Who is calling a tool: the principal of the HTTP request, or the one key of a stdio server."""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError

from core.identity.middleware import PRINCIPAL
from core.identity.principal import Principal


class Caller:
    """Resolves the principal of a tool call.

    Over HTTP the app's authentication middleware has put it in the request's
    scope before any MCP message was read (``/mcp`` is a protected path); over
    stdio there is one principal for the process, from ``AITP_API_KEY``.
    """

    def __init__(self, fixed: Principal | None = None) -> None:
        self._fixed = fixed

    def __call__(self, ctx: Context[Any, Any]) -> Principal:
        return self.of_request(ctx.request_context.request)

    def of_request(self, request: object) -> Principal:
        """The principal of a lowlevel handler's request (``ServerRequestContext.request``)."""
        if self._fixed is not None:
            return self._fixed
        scope = getattr(request, "scope", None)
        principal = scope.get(PRINCIPAL) if isinstance(scope, dict) else None
        if not isinstance(principal, Principal):
            # Cannot happen behind the middleware; refuse rather than guess an identity.
            raise ToolError("this request carries no authenticated aitp key; send Authorization: Bearer sk-aitp-…")
        return principal
