"""``/mcp`` in the main app: the MCP server on the platform's services, run by the app's lifespan."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette

from agents.platform import Platform
from core.identity.principal import DEFAULT_PROJECT, ROOT_KEY_ID, Principal
from mcp_server.caller import Caller
from mcp_server.http import mcp_route
from mcp_server.prompts import add_registry_prompts
from mcp_server.server import build_server

# Registry prompts are listed once at start, as the server admin sees them; each render runs as its caller.
_LISTER = Principal(key_id=ROOT_KEY_ID, project_id=DEFAULT_PROJECT, role="admin", root=True)


def mount_mcp(app: Starlette, platform: Platform) -> contextlib.AbstractAsyncContextManager[None]:
    """Add the ``/mcp`` route; the returned context (entered in the lifespan, after the platform started) runs it."""
    settings = platform.settings.mcp
    caller = Caller()
    server, watch = build_server(platform.services, settings, caller)
    app.router.routes.append(mcp_route(server, settings))

    @contextlib.asynccontextmanager
    async def running() -> AsyncIterator[None]:
        await add_registry_prompts(server, platform.services, caller, _LISTER)
        async with server.session_manager.run(), watch.running():
            yield

    return running()
