"""HTTP plumbing shared by every route: JSON responses, request ids, body limits, input guards, error handlers.

Every failure is answered with a complete response by the middleware here, so
uvicorn never sees an exception: the connection stays open for the next
request and each error is logged once, by :func:`handle_unexpected`.
"""

from __future__ import annotations

import logging
import re
import traceback
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import orjson
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .db import describe_error, sqlstate
from .errors import APIError, InvalidRequest, PayloadTooLarge, ServiceUnavailable
from .logging import bind_log_context, reset_log_context
from .validation import MAX_PATH_PARAM_CHARS, MAX_QUERY_VALUE_CHARS, NUL, invalid_from

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
        context = bind_log_context(request_id=rid)
        try:
            await self._call(scope, receive, send, rid, length)
        finally:
            reset_log_context(context)

    async def _call(self, scope: Scope, receive: Receive, send: Send, rid: str, length: int) -> None:
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
        except Exception as exc:
            # Answered here rather than re-raised (as Starlette's outermost handler does), so that
            # uvicorn keeps the connection alive and does not log the traceback a second time.
            response = await handle_unexpected(Request(scope), exc)
            if not started:
                await response(scope, receive, send_with_id)


class _BodyTooLarge(Exception):
    pass


def _too_large(limit: int, setting: str) -> Response:
    error = PayloadTooLarge(
        f"request body exceeds the limit of {limit} bytes; send less, or raise {setting}",
        param=None,
    )
    return error_response(error)


class InputGuardMiddleware:
    """400 for a path or query value no handler could store: a NUL character, or far too long.

    PostgreSQL refuses NUL in any text and SQLite keeps it, so both are refused
    here, before any handler reads them; the error names the path parameter
    (found by matching the app's routes) or the query parameter.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            error = _path_problem(scope) or _query_problem(scope.get("query_string", b""))
            if error is not None:
                if scope["type"] == "http":
                    await error_response(error)(scope, receive, send)
                else:
                    await send({"type": "websocket.close", "code": 1008, "reason": error.message[:120]})
                return
        await self.app(scope, receive, send)


def _path_problem(scope: Scope) -> InvalidRequest | None:
    path: str = scope.get("path", "")
    if NUL not in path and len(path) <= MAX_PATH_PARAM_CHARS:
        return None
    names = _path_params(scope)
    for name, value in names.items():
        if isinstance(value, str) and (NUL in value or len(value) > MAX_PATH_PARAM_CHARS):
            return _bad_text(f"path parameter '{name}'", name, value, MAX_PATH_PARAM_CHARS)
    for index, segment in enumerate(path.split("/")):
        if NUL in segment or len(segment) > MAX_PATH_PARAM_CHARS:
            return _bad_text(f"path segment {index}", "path", segment, MAX_PATH_PARAM_CHARS)
    return None


def _path_params(scope: Scope) -> dict[str, Any]:
    app = scope.get("app")
    for route in getattr(app, "routes", ()):
        match, child = route.matches(scope)
        if match != Match.NONE:
            params: dict[str, Any] = child.get("path_params", {})
            return params
    return {}


def _query_problem(raw: bytes) -> InvalidRequest | None:
    if b"%00" not in raw and b"\x00" not in raw and len(raw) <= MAX_QUERY_VALUE_CHARS:
        return None
    for name, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True):
        if NUL in name:
            return _bad_text("a query parameter name", name.replace(NUL, ""), name, MAX_QUERY_VALUE_CHARS)
        if NUL in value or len(value) > MAX_QUERY_VALUE_CHARS:
            return _bad_text(f"query parameter '{name}'", name, value, MAX_QUERY_VALUE_CHARS)
    return None


def _bad_text(what: str, param: str, value: str, limit: int) -> InvalidRequest:
    if NUL in value:
        return InvalidRequest(f"{what} contains a NUL character (%00); remove it", param=param)
    return InvalidRequest(f"{what} is {len(value)} characters long; at most {limit}", param=param)


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
    """The database is overloaded or unreachable: a 503 the client may retry, not a 500.

    A value the database refused (SQLSTATE class 22, "data exception") is the
    client's: a 400, since retrying the same request cannot help. The edge
    models should have caught it, so it is logged as a warning to be fixed there.
    """
    assert isinstance(exc, SQLAlchemyError)
    rid = request_id(request)
    trace = "".join(traceback.format_tb(exc.__traceback__)[-8:])
    code = sqlstate(exc)
    if code is not None and code.startswith("22"):
        log.warning("value refused by the database: %s\n%s", describe_error(exc), trace, extra={"request_id": rid})
        return error_response(
            InvalidRequest(
                f"a value in the request does not fit what the database stores (SQLSTATE {code}); "
                "check the lengths and ranges of the fields you sent",
                code="invalid_value",
            )
        )
    # No exc_info: the driver's message quotes bound values (key hashes, client input); describe_error drops them.
    log.error("database error: %s\n%s", describe_error(exc), trace, extra={"request_id": rid})
    error = ServiceUnavailable(
        f"the database is unavailable or overloaded ({type(exc).__name__}); retry shortly, and quote request id {rid}",
        code="database_unavailable",
        headers={"retry-after": "1"},
    )
    return error_response(error)


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    rid = request_id(request)
    if isinstance(exc, SQLAlchemyError):
        return await handle_database_error(request, exc)
    log.error("unhandled error", extra={"request_id": rid}, exc_info=exc)
    error = APIError(f"internal error; quote request id {rid} when reporting it", code="internal_error")
    return error_response(error)


async def handle_validation_error(request: Request, exc: Exception) -> Response:
    """A pydantic model built from client input outside :func:`core.validation.parse`: still a 400."""
    assert isinstance(exc, ValidationError)
    log.warning("validation error outside parse()", extra={"request_id": request_id(request)}, exc_info=exc)
    return error_response(invalid_from(exc))


async def handle_too_deep(request: Request, exc: Exception) -> Response:
    log.warning("input too deep for a handler", extra={"request_id": request_id(request)}, exc_info=exc)
    return error_response(
        InvalidRequest("the request is nested too deeply to process; flatten it", code="too_deeply_nested")
    )


async def handle_overflow(request: Request, exc: Exception) -> Response:
    log.warning("number out of range in a handler", extra={"request_id": request_id(request)}, exc_info=exc)
    return error_response(
        InvalidRequest(f"a number or date in the request is out of range ({exc}); send a smaller one")
    )


Handler = Callable[[Request, Exception], Awaitable[Response]]


def exception_handlers() -> dict[type[Exception], Handler]:
    """The handlers the app registers; anything else is answered by :class:`RequestContextMiddleware`.

    ``Exception`` is deliberately absent: Starlette re-raises after its handler,
    which makes uvicorn close the connection and log the error again.
    """
    return {
        APIError: handle_api_error,
        SQLAlchemyError: handle_database_error,
        HTTPException: handle_http_exception,
        ValidationError: handle_validation_error,
        RecursionError: handle_too_deep,
        OverflowError: handle_overflow,
    }
