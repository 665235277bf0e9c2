"""``/mcp`` over streamable HTTP inside the main app, behind the same keys as REST."""

from __future__ import annotations

from mcp.server import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.routing import Route
from starlette.types import ASGIApp

from core.settings import McpSettings

from .caller import Authenticate, RequireKey

PATH = "/mcp"


def mcp_route(server: MCPServer, settings: McpSettings, authenticate: Authenticate) -> Route:
    """The route to add to the host app; its lifespan must run ``server.session_manager.run()``."""
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=list(settings.allowed_hosts),
        allowed_origins=list(settings.allowed_origins),
    )
    app: ASGIApp = server.streamable_http_app(streamable_http_path=PATH, transport_security=security)
    return Route(PATH, endpoint=RequireKey(app, authenticate))
