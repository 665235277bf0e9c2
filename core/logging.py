"""Logging: one line of JSON a record, carrying the request id, task id and project of the line's context.

The request middleware (:class:`core.http.RequestContextMiddleware`) and the
task executor open a context with :func:`bind_log_context`; authentication
adds the project with :func:`add_log_context`. :class:`ContextFilter` copies
the context (and the current trace id, when tracing is on) onto every record
logged within it, so a handler's or a library's line needs no ``extra``.
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar, Token
from datetime import UTC, datetime

import orjson
from opentelemetry import trace

_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}


# One dict per request or task, shared by everything running on its behalf (copied contexts keep the same dict).
_CONTEXT: ContextVar[dict[str, str] | None] = ContextVar("aitp_log_context", default=None)


def bind_log_context(**fields: str) -> Token[dict[str, str] | None]:
    """Start the context of a request or task; pass the token to :func:`reset_log_context` when it ends."""
    return _CONTEXT.set(dict(fields))


def reset_log_context(token: Token[dict[str, str] | None]) -> None:
    _CONTEXT.reset(token)


def add_log_context(**fields: str) -> None:
    """Add to the current context: its lines from now on, in every layer of the request, carry the fields."""
    current = _CONTEXT.get()
    if current is None:
        _CONTEXT.set(dict(fields))
    else:
        current.update(fields)


def log_context() -> dict[str, str]:
    return dict(_CONTEXT.get() or {})


class ContextFilter(logging.Filter):
    """Puts the context's fields on the record; a field the call passed in ``extra`` wins."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = _CONTEXT.get()
        if fields:
            for key, value in fields.items():
                if key not in record.__dict__:
                    setattr(record, key, value)
        span = trace.get_current_span().get_span_context()
        if span.is_valid and "trace_id" not in record.__dict__:
            record.trace_id = trace.format_trace_id(span.trace_id)
            record.span_id = trace.format_span_id(span.span_id)
        return True


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith(("_", "litellm")):
                data[key] = value
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(data, default=str).decode()


def configure_logging(level: str, json_lines: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter())
    if json_lines:
        handler.setFormatter(JSONFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "httpx", "litellm"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
