"""Errors a client can see, in OpenAI's error shape.

Every error names its cause and, where there is one, the fix. Handlers turn
an :class:`APIError` into ``{"error": {"message", "type", "code", "param"}}``
with its status; anything else becomes a 500 without a traceback.
"""

from __future__ import annotations

from typing import Any


class APIError(Exception):
    status: int = 500
    type: str = "server_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.headers = headers or {}
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"message": self.message, "type": self.type, "code": self.code, "param": self.param}
        error.update(self.extra)
        return {"error": error}


class InvalidRequest(APIError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class Unauthorized(APIError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class Forbidden(APIError):
    status = 403
    type = "permission_error"
    code = "forbidden"


class NotFound(APIError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class PayloadTooLarge(APIError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class RateLimited(APIError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class UpstreamError(APIError):
    status = 502
    type = "upstream_error"
    code = "upstream_failed"


class UpstreamTimeout(APIError):
    status = 504
    type = "upstream_error"
    code = "upstream_timeout"


class ServiceUnavailable(APIError):
    status = 503
    type = "server_error"
    code = "unavailable"
