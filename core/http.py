"""HTTP plumbing shared by every route: JSON responses, request ids, body limits, error handlers."""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import APIError, InvalidRequest, PayloadTooLarge, ServiceUnavailable

log = logging.getLogger("aitp.http")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error_response(error: APIError) -> Response:
    """The error as a response; RequestContextMiddleware adds ``x-request-id``."""
    return JSONResponse(error.body(), status_code=error.status, headers=dict(error.headers))


def request_id(request: Request) -> str:
    return str(request.scope.get("aitp.request_id") or "")


class RequestContextMiddleware:
    """Gives each request an id (``x-request-id``, echoed back) and caps the body size (413)."""

    def __init__(
        self, app: ASGIApp, max_body_bytes: int, path_limits: dict[str, tuple[int, str]] | None = None
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        # path -> (limit, setting that raises it): uploads may be larger than API bodies.
        self.path_limits = path_limits or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = ""
        length = -1
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
            elif name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    length = -1
        rid = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        scope["aitp.request_id"] = rid
        rid_header = (b"x-request-id", rid.encode())
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []), rid_header]
            await send(message)

        limit, setting = self.path_limits.get(scope.get("path", ""), (self.max_body_bytes, "server.max_body_bytes"))
        if length > limit:
            await _too_large(limit, setting)(scope, receive, send_with_id)
            return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _BodyTooLarge
            return message

        try:
            await self.app(scope, limited_receive, send_with_id)
        except _BodyTooLarge:
            if not started:
                await _too_large(limit, setting)(scope, receive, send_with_id)


class _BodyTooLarge(Exception):
    pass


def _too_large(limit: int, setting: str) -> Response:
    error = PayloadTooLarge(
        f"request body exceeds the limit of {limit} bytes; send less, or raise {setting}",
        param=None,
    )
    return error_response(error)


async def read_json(request: Request) -> Any:
    body = await request.body()
    if not body:
        raise InvalidRequest("request body is empty; send a JSON object")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc}") from None


async def handle_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, APIError)
    return error_response(exc)


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        error: APIError = APIError(f"no route {request.method} {request.url.path}", status=404, code="not_found")
        error.type = "invalid_request_error"
    elif exc.status_code == 405:
        error = APIError(f"method {request.method} is not allowed on {request.url.path}", status=405)
        error.type = "invalid_request_error"
        error.code = "method_not_allowed"
    else:
        error = APIError(str(exc.detail), status=exc.status_code)
    return error_response(error)


async def handle_database_error(request: Request, exc: Exception) -> Response:
    """The database is overloaded or unreachable: a 503 the client may retry, not a 500."""
    rid = request_id(request)
    log.error("database error: %s", exc, extra={"request_id": rid}, exc_info=exc)
    error = ServiceUnavailable(
        f"the database is unavailable or overloaded ({type(exc).__name__}); retry shortly, and quote request id {rid}",
        code="database_unavailable",
        headers={"retry-after": "1"},
    )
    return error_response(error)


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    rid = request_id(request)
    log.exception("unhandled error", extra={"request_id": rid})
    error = APIError(f"internal error; quote request id {rid} when reporting it", code="internal_error")
    return error_response(error)
