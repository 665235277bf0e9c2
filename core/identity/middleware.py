"""Authentication, once per request, for every interface: REST, the OpenAI routes, WebSockets and ``/mcp``.

:class:`AuthenticationMiddleware` resolves the presented key to a
:class:`~core.identity.principal.Principal` before any route (or mounted app)
of a protected path runs, and puts it in ``scope["principal"]``; handlers read
it with :func:`principal_of`. A missing, unknown, revoked or expired key is
answered here: a 401 in OpenAI's error shape over HTTP, or a close with code
1008 naming the cause on a WebSocket (browsers cannot set headers there, so
the key may also come as ``?token=``). Paths outside the protected prefixes
(health, metrics, the console) pass through untouched.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from starlette.datastructures import QueryParams
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from core.errors import APIError
from core.http import error_response
from core.logging import add_log_context

from .principal import Principal

Authenticate = Callable[[str | None], Awaitable[Principal]]  # an Authorization header value -> who calls
PRINCIPAL = "principal"  # the scope key; mounted apps see it too, since Starlette copies the scope down
PROTECTED = ("/api", "/v1", "/mcp")
_CLOSE_REASON_BYTES = 123  # RFC 6455: a close frame's payload is 125 bytes, two of them the code
_POLICY_VIOLATION = 1008


class AuthenticationMiddleware:
    def __init__(self, app: ASGIApp, authenticate: Authenticate, protected: Sequence[str] = PROTECTED) -> None:
        self.app = app
        self.authenticate = authenticate
        self.protected = tuple(p.rstrip("/") for p in protected)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not self._is_protected(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        try:
            scope[PRINCIPAL] = principal = await self.authenticate(authorization_of(scope))
        except APIError as exc:
            if scope["type"] == "http":
                # RFC 6750: a 401 names the scheme it wants.
                exc.headers.setdefault("www-authenticate", "Bearer")
                await error_response(exc)(scope, receive, send)
            else:
                await send({"type": "websocket.close", "code": _POLICY_VIOLATION, "reason": close_reason(exc)})
            return
        add_log_context(project=principal.project_id)
        await self.app(scope, receive, send)

    def _is_protected(self, path: str) -> bool:
        return any(path == prefix or path.startswith(prefix + "/") for prefix in self.protected)


def authorization_of(scope: Scope) -> str | None:
    """The credential as an Authorization header value: the header, or on a WebSocket ``?token=``."""
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            return str(value.decode("latin-1"))
    if scope["type"] == "websocket":
        token = QueryParams(scope.get("query_string", b"")).get("token")
        if token:
            return f"Bearer {token}"
    return None


def principal_of(conn: HTTPConnection | Scope) -> Principal:
    """Who sent this request or WebSocket, as :class:`AuthenticationMiddleware` found it."""
    scope = conn.scope if isinstance(conn, HTTPConnection) else conn
    principal = scope.get(PRINCIPAL)
    if not isinstance(principal, Principal):
        # A wiring fault (a route outside the protected prefixes asked who called): fail closed, loudly.
        raise RuntimeError(f"no authenticated principal for {scope.get('path')!r}: it is not behind authentication")
    return principal


def close_reason(error: APIError) -> str:
    """``code: message``, cut to what a close frame holds (bytes, not characters: messages may be Chinese)."""
    reason = f"{error.code}: {error.message}" if error.code else error.message
    return reason.encode()[:_CLOSE_REASON_BYTES].decode(errors="ignore")
