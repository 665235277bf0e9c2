"""Chat completions: validate → route → call the Router → (cascade) → account.

One :class:`ChatService` per process. It never touches HTTP objects beyond
returning a Starlette response, so agents can later call :meth:`complete`
in-process and be routed, budgeted and logged like an API client.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import jsonschema
import orjson
from starlette.responses import Response, StreamingResponse

from core.errors import APIError, ServiceUnavailable

from .engine import Engine, Served
from .metrics import GatewayMetrics
from .routing import RouteDecision, RoutingPolicy
from .schemas import ChatRequest, parse
from .streaming import StreamRelay
from .usage import Usage, UsageRecorder

log = logging.getLogger("aitp.gateway.chat")

# Fields aitp consumes itself; the rest of the body goes to the upstream as sent.
_CONSUMED = frozenset({"model", "metadata", "stream", "stream_options"})


@dataclass(slots=True)
class CallContext:
    """Who is calling; later layers add project, key and budget scopes."""

    request_id: str
    started: float
    project_id: str | None = None
    key_id: str | None = None


class EngineRef:
    """The engine once litellm has loaded; callers wait for it on their first request."""

    def __init__(self) -> None:
        self._engine: Engine | None = None
        self._error: BaseException | None = None
        self._event = asyncio.Event()

    def resolve(self, future: asyncio.Future[Engine]) -> None:
        """Done-callback for the loading future (runs on the event loop)."""
        if future.cancelled():
            self._error = RuntimeError("loading was cancelled")
        elif future.exception() is not None:
            self._error = future.exception()
            log.error("the LLM engine failed to load: %r", self._error)
        else:
            self._engine = future.result()
        self._event.set()

    @property
    def ready(self) -> bool:
        return self._engine is not None

    async def get(self) -> Engine:
        if self._engine is None:
            await self._event.wait()
        if self._engine is None:
            raise ServiceUnavailable(f"the LLM engine failed to load ({self._error!r}); see the server log")
        return self._engine


def _schema_failure(response: Any, schema: dict[str, Any]) -> str | None:
    """Why the first choice does not meet the schema, or None when it does."""
    try:
        content = response.choices[0].message.content
    except (AttributeError, IndexError):
        return "no message in the answer"
    if not isinstance(content, str):
        return "the answer has no text content"
    try:
        value = orjson.loads(content)
    except orjson.JSONDecodeError as exc:
        return f"the answer is not JSON ({exc})"
    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError as exc:
        return f"the answer breaks the schema: {exc.message}"
    except jsonschema.SchemaError as exc:
        return f"the requested schema is invalid: {exc.message}"
    return None


def _tokens(response: Any) -> tuple[int, int]:
    usage = getattr(response, "usage", None)
    if usage is None:
        return 0, 0
    return int(getattr(usage, "prompt_tokens", 0) or 0), int(getattr(usage, "completion_tokens", 0) or 0)


class ChatService:
    def __init__(
        self,
        engine: EngineRef,
        policy: RoutingPolicy,
        recorder: UsageRecorder,
        metrics: GatewayMetrics,
        downgrade: Callable[[CallContext, ChatRequest], Awaitable[str | None]] | None = None,
    ) -> None:
        self._engine = engine
        self._policy = policy
        self._recorder = recorder
        self._metrics = metrics
        self._downgrade = downgrade  # budget pressure hook (budgets issue)

    async def handle(self, body: Any, ctx: CallContext) -> Response:
        request: ChatRequest = parse(ChatRequest, body)
        engine = await self._engine.get()
        downgrade = await self._downgrade(ctx, request) if self._downgrade else None
        messages = body["messages"]
        decision = self._policy.decide(request, lambda: engine.count_tokens(messages), downgrade=downgrade)
        self._metrics.route_decisions.labels(decision.tier or "none", decision.reason).inc()
        payload = {k: v for k, v in body.items() if k not in _CONSUMED}
        if request.stream:
            return await self._stream(engine, request, payload, decision, ctx)
        return await self._complete(engine, request, payload, decision, ctx)

    def _usage(self, request: ChatRequest, ctx: CallContext, decision: RouteDecision) -> Usage:
        return Usage(
            request_id=ctx.request_id,
            endpoint="chat",
            model_requested=request.model,
            stream=request.stream,
            project_id=ctx.project_id,
            key_id=ctx.key_id,
            user=request.user,
            tier=decision.tier,
            route_reason=decision.reason,
        )

    def _account(self, usage: Usage, engine: Engine, served: Served, response: Any) -> None:
        prompt, completion = _tokens(response)
        usage.model_used = served.entry.label
        usage.deployment = served.entry.name
        usage.tier = served.entry.tier or usage.tier
        usage.prompt_tokens = prompt
        usage.completion_tokens = completion
        usage.cost_usd = engine.price(served.entry).cost(prompt, completion)

    def _finish(self, usage: Usage, ctx: CallContext) -> None:
        usage.latency_ms = (time.perf_counter() - ctx.started) * 1000
        self._recorder.record(usage)
        tier = usage.tier or "none"
        self._metrics.requests.labels(usage.endpoint, tier, usage.status).inc()
        self._metrics.duration.labels(usage.endpoint).observe(usage.latency_ms / 1000)
        if usage.prompt_tokens or usage.completion_tokens:
            self._metrics.tokens.labels("prompt", tier).inc(usage.prompt_tokens)
            self._metrics.tokens.labels("completion", tier).inc(usage.completion_tokens)
            self._metrics.spend.labels(tier).inc(usage.cost_usd)

    def _fail(self, usage: Usage, ctx: CallContext, error: APIError) -> APIError:
        usage.status = "error"
        usage.http_status = error.status
        usage.error_type = error.code
        self._finish(usage, ctx)
        return error

    async def _call(
        self, engine: Engine, group: str, payload: dict[str, Any], usage: Usage, ctx: CallContext
    ) -> tuple[Any, Served]:
        try:
            return await engine.complete(group, payload)
        except asyncio.CancelledError:
            usage.status = "client_disconnected"
            usage.http_status = 499
            self._finish(usage, ctx)
            raise
        except Exception as exc:
            raise self._fail(usage, ctx, engine.map_error(exc)) from None

    async def _complete(
        self, engine: Engine, request: ChatRequest, payload: dict[str, Any], decision: RouteDecision, ctx: CallContext
    ) -> Response:
        usage = self._usage(request, ctx, decision)
        response, served = await self._call(engine, decision.group, payload, usage, ctx)
        self._account(usage, engine, served, response)
        reason = _reason(decision, served)
        schema = request.json_schema
        if decision.cascade and schema is not None:
            failure = _schema_failure(response, schema)
            if failure is not None:
                # The turbo answer is paid for; record it, then re-ask plus once.
                usage.status = "schema_failed"
                usage.route_reason = reason
                self._finish(usage, ctx)
                log.info("cascade to plus", extra={"request_id": ctx.request_id, "why": failure})
                usage = self._usage(request, ctx, decision)
                reason = f"{decision.reason}+cascade"
                usage.route_reason = reason
                response, served = await self._call(engine, "plus", payload, usage, ctx)
                self._account(usage, engine, served, response)
        usage.route_reason = reason
        self._finish(usage, ctx)
        headers = _headers(served, usage, reason)
        return Response(response.model_dump_json(exclude_none=True), media_type="application/json", headers=headers)

    async def _stream(
        self, engine: Engine, request: ChatRequest, payload: dict[str, Any], decision: RouteDecision, ctx: CallContext
    ) -> Response:
        usage = self._usage(request, ctx, decision)
        client_options = request.stream_options.model_dump(exclude_none=True) if request.stream_options else {}
        payload["stream"] = True
        payload["stream_options"] = {**client_options, "include_usage": True}
        stream, served = await self._call(engine, decision.group, payload, usage, ctx)
        reason = _reason(decision, served)
        usage.route_reason = reason
        usage.model_used = served.entry.label
        usage.deployment = served.entry.name
        usage.tier = served.entry.tier or usage.tier
        relay = StreamRelay(
            stream=stream,
            engine=engine,
            served=served,
            usage=usage,
            messages=payload["messages"],
            client_wants_usage=bool(client_options.get("include_usage")),
            on_done=lambda: self._finish(usage, ctx),
        )
        headers = _headers(served, usage, reason, streaming=True)
        return StreamingResponse(relay, media_type="text/event-stream", headers=headers)


def _reason(decision: RouteDecision, served: Served) -> str:
    if served.group != decision.group:
        return f"{decision.reason}+fallback_{decision.group}_to_{served.group}"
    return decision.reason


def _headers(served: Served, usage: Usage, reason: str, streaming: bool = False) -> dict[str, str]:
    return {
        "x-aitp-model": served.entry.label,
        "x-aitp-tier": usage.tier or "none",
        "x-aitp-route-reason": reason,
        # A stream's cost is known only at its end: it comes in the final usage chunk ("aitp.cost_usd").
        "x-aitp-cost-usd": "pending" if streaming else f"{usage.cost_usd:.8f}",
        "cache-control": "no-cache",
    }
