"""``/mcp`` over streamable HTTP inside the main app, behind the same authentication as REST."""

from __future__ import annotations

from mcp.server import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.routing import Route

from core.settings import McpSettings

PATH = "/mcp"


def mcp_route(server: MCPServer, settings: McpSettings) -> Route:
    """The route to add to the host app (its lifespan must run ``server.session_manager.run()``).

    The app's authentication middleware covers ``/mcp``: a request without a valid key is
    answered 401 there, before this route runs.
    """
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=list(settings.allowed_hosts),
        allowed_origins=list(settings.allowed_origins),
    )
    app = server.streamable_http_app(streamable_http_path=PATH, transport_security=security)
    return Route(PATH, endpoint=app)
