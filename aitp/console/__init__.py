"""The web console: static files served at ``/console`` (``/dashboard`` redirects there), gzip-compressed.

The page is plain ES modules and CSS with no build step; it reads only the
public ``/api/*`` endpoints and the task WebSocket with the key the user
signs in with (kept in ``sessionStorage``). A strict Content-Security-Policy
keeps the page to its own scripts, so injected markup cannot run or send the key elsewhere.
"""

from __future__ import annotations

from pathlib import Path

from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STATIC = Path(__file__).parent / "static"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    # Revalidate each time (a 304 when unchanged): a new release is picked up at the next load.
    (b"cache-control", b"no-cache"),
]


class _SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def console_app(directory: Path = STATIC) -> ASGIApp:
    return _SecurityHeaders(GZipMiddleware(StaticFiles(directory=directory, html=True), minimum_size=512))


def console_routes() -> list[BaseRoute]:
    async def to_console(request: Request) -> Response:
        return RedirectResponse("/console/", status_code=307)

    return [
        Route("/dashboard", to_console, methods=["GET"]),
        Route("/dashboard/", to_console, methods=["GET"]),
        Route("/console", to_console, methods=["GET"]),
        Mount("/console", app=console_app(), name="console"),
    ]
