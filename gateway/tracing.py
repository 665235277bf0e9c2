"""The span and duration of one upstream call: what was asked for, which deployment answered, tokens, retries.

litellm's Router retries and falls back inside one call; the span covers all of
it and says how many retries it took (``aitp.upstream.retries``). A cascade
(turbo, then plus) is two calls, so two spans. For a stream the span ends when
the upstream starts answering; the tokens come with the stream's end.

Each span's duration is also added to the call's ``usage.upstream_ms``, the part
of the row's latency that the upstream took; a stream adds, in
:class:`~gateway.streaming.StreamRelay`, the time it then waits for each chunk.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry.trace import Span, SpanKind, Tracer
from prometheus_client import Histogram

from .engine import Served
from .usage import Usage


@contextmanager
def upstream_span(tracer: Tracer, duration: Histogram, group: str, usage: Usage) -> Iterator[Span]:
    """A span around the call, its duration observed in ``duration`` (aitp_upstream_duration_seconds)
    and added to ``usage.upstream_ms``, failed calls included."""
    attributes = {
        "gen_ai.operation.name": usage.endpoint,
        "gen_ai.request.model": group,
        "aitp.route_reason": usage.route_reason or "",
        "aitp.request_id": usage.request_id,
    }
    if usage.task_id:
        attributes["aitp.task_id"] = usage.task_id
    started = time.perf_counter()
    try:
        with tracer.start_as_current_span(f"upstream {group}", kind=SpanKind.CLIENT, attributes=attributes) as span:
            yield span
    finally:
        elapsed = time.perf_counter() - started
        duration.observe(elapsed)
        usage.upstream_ms += elapsed * 1000


def served_attributes(span: Span, served: Served, response: Any) -> None:
    if not span.is_recording():
        return
    span.set_attribute("gen_ai.response.model", served.entry.label)
    span.set_attribute("aitp.deployment", served.entry.name)
    span.set_attribute("aitp.tier", served.entry.tier or "none")
    usage = getattr(response, "usage", None)
    if usage is not None:
        span.set_attribute("gen_ai.usage.input_tokens", int(getattr(usage, "prompt_tokens", 0) or 0))
        span.set_attribute("gen_ai.usage.output_tokens", int(getattr(usage, "completion_tokens", 0) or 0))
    hidden: Mapping[str, Any] = getattr(response, "_hidden_params", None) or {}
    retries = (hidden.get("additional_headers") or {}).get("x-litellm-attempted-retries")
    if isinstance(retries, int):
        span.set_attribute("aitp.upstream.retries", retries)
