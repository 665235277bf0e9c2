"""OpenTelemetry traces: one tracer provider a process, built from ``tracing:`` settings and passed down.

Nothing here touches OpenTelemetry's global tracer provider: :class:`Tracing`
owns its provider and hands its :attr:`~Tracing.tracer` to the parts that
open spans (the HTTP middleware below, the gateway's chat service, the task
executor). Disabled (the default), the tracer is OpenTelemetry's no-op one and
the HTTP middleware is not installed. The current span travels in
OpenTelemetry's context (a contextvar), so spans opened by different parts
nest without being passed around; across processes it travels as a W3C
``traceparent`` (:meth:`Tracing.inject` / :meth:`Tracing.extract`), in HTTP
headers and in task messages.
"""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .settings import TracingSettings

_PROPAGATOR = TraceContextTextMapPropagator()  # stateless: W3C traceparent/tracestate in and out


class Tracing:
    """The process's tracer and its provider (None when disabled); :meth:`shutdown` flushes the spans."""

    def __init__(self, tracer: Tracer, provider: TracerProvider | None = None) -> None:
        self.tracer = tracer
        self._provider = provider

    @classmethod
    def disabled(cls) -> Tracing:
        return cls(trace.NoOpTracer())

    @classmethod
    def from_settings(cls, settings: TracingSettings, *, exporter: SpanExporter | None = None) -> Tracing:
        """The tracing ``settings`` ask for; ``exporter`` replaces OTLP and exports each span at once (tests)."""
        if not settings.enabled:
            return cls.disabled()
        provider = TracerProvider(
            resource=Resource.create({"service.name": settings.service_name}),
            sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio)),
        )
        if exporter is not None:
            provider.add_span_processor(SimpleSpanProcessor(exporter))
        else:
            # Imported only when used: the exporter pulls in protobuf.
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            otlp = OTLPSpanExporter(endpoint=settings.endpoint, headers=dict(settings.headers) or None)
            provider.add_span_processor(BatchSpanProcessor(otlp))
        return cls(provider.get_tracer("aitp"), provider)

    @property
    def enabled(self) -> bool:
        return self._provider is not None

    def inject(self) -> dict[str, str]:
        """The current span's context as W3C headers; empty when there is none (or tracing is off)."""
        carrier: dict[str, str] = {}
        if self.enabled:
            _PROPAGATOR.inject(carrier)
        return carrier

    @staticmethod
    def extract(carrier: Mapping[str, str] | None) -> otel_context.Context:
        """The context a carrier from :meth:`inject` names (an empty one for an empty carrier)."""
        return _PROPAGATOR.extract(dict(carrier or {}))

    def shutdown(self) -> None:
        if self._provider is not None:
            self._provider.shutdown()


class TracingMiddleware:
    """A server span for each HTTP request (plain ASGI), continuing the caller's ``traceparent`` if it sent one.

    Named ``METHOD /route/{template}`` once routing has matched (``METHOD`` alone
    for unmatched paths, so names stay few), with the status, the path and the
    request id as attributes; a 5xx marks the span as an error.
    """

    def __init__(self, app: ASGIApp, tracer: Tracer) -> None:
        self.app = app
        self.tracer = tracer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"] if k in _TRACE_HEADERS}
        method = scope["method"]
        attributes = {"http.request.method": method, "url.path": scope["path"]}
        with self.tracer.start_as_current_span(
            method, context=_PROPAGATOR.extract(headers), kind=SpanKind.SERVER, attributes=attributes
        ) as span:

            async def send_traced(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status = int(message["status"])
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        span.set_status(Status(StatusCode.ERROR))
                await send(message)

            try:
                await self.app(scope, receive, send_traced)
            finally:
                route = getattr(scope.get("route"), "path", None)
                if route:
                    span.update_name(f"{method} {route}")
                    span.set_attribute("http.route", route)
                if scope.get("aitp.request_id"):
                    span.set_attribute("aitp.request_id", str(scope["aitp.request_id"]))


_TRACE_HEADERS = (b"traceparent", b"tracestate")
