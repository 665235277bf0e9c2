"""Chat completions: validate → route → call the Router → (cascade) → account.

One :class:`ChatService` per process. It never touches HTTP objects beyond
returning a Starlette response, so agents call :meth:`complete` in process
(``agents/llm.py``) and are routed, budgeted and logged like an API client.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
import jsonschema
import orjson
from opentelemetry.trace import NoOpTracer, Tracer
from starlette.responses import Response, StreamingResponse

from core.clock import Clock
from core.errors import InvalidRequest, ServiceUnavailable
from core.identity.principal import Principal
from core.schema import check_schema, validator

from .budgets.enforcer import Admission, BudgetEnforcer, Plan
from .catalog import Catalog
from .engine import Engine, Served
from .metrics import GatewayMetrics
from .prompts.registry import PromptRegistry
from .prompts.use import PromptCall, prepare
from .routing import RouteDecision, RoutingPolicy
from .schemas import ChatRequest, PromptRef, extra_body, parse, unknown_fields
from .streaming import StreamRelay
from .tracing import served_attributes, upstream_span
from .usage import Usage, UsageRecorder

log = logging.getLogger("aitp.gateway.chat")


@dataclass(frozen=True, slots=True)
class Completion:
    """What an in-process caller gets back from :meth:`ChatService.complete`."""

    content: str
    model: str
    tier: str | None
    route_reason: str
    cost_usd: float
    prompt_tokens: int
    completion_tokens: int
    prompt_name: str | None
    prompt_version: int | None
    request_id: str


@dataclass(slots=True)
class CallContext:
    """Who is calling and when the call started."""

    request_id: str
    started: float
    principal: Principal
    task_id: str | None = None  # the task making the call in process, recorded on its usage row

    @property
    def project_id(self) -> str:
        return self.principal.project_id

    @property
    def key_id(self) -> str:
        return self.principal.key_id


class EngineRef:
    """The engine once litellm has loaded; callers wait for it on their first request."""

    def __init__(self) -> None:
        self._loaded: Engine | None = None
        self._error: BaseException | None = None
        self._event = asyncio.Event()
        self._loader: Callable[[], object] | None = None
        self.loading = False

    def load_on_demand(self, loader: Callable[[], object]) -> None:
        """Start ``loader`` (which calls :meth:`resolve` when done) on the first :meth:`get`, not before."""
        self._loader = loader

    def resolve(self, future: asyncio.Future[Engine]) -> None:
        """Done-callback for the loading future (runs on the event loop)."""
        if future.cancelled():
            self._error = RuntimeError("loading was cancelled")
        elif future.exception() is not None:
            self._error = future.exception()
            log.error("the LLM engine failed to load: %r", self._error)
        else:
            self._loaded = future.result()
        self._event.set()

    @property
    def ready(self) -> bool:
        return self._loaded is not None

    def current(self) -> Engine:
        """The engine if loaded, without waiting (503 while litellm is still loading)."""
        if self._loaded is None:
            raise ServiceUnavailable("the LLM engine is still loading; retry in a few seconds", code="loading")
        return self._loaded

    async def get(self) -> Engine:
        if self._loaded is None:
            if not self.loading and self._loader is not None:
                self._loader()
            await self._event.wait()
        if self._loaded is None:
            raise ServiceUnavailable(f"the LLM engine failed to load ({self._error!r}); see the server log")
        return self._loaded


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
    # RE2 patterns: the schema comes from the client, so a backtracking regex would let it stall the loop.
    try:
        check_schema(schema)
        error = jsonschema.exceptions.best_match(validator(schema).iter_errors(value))
    except jsonschema.SchemaError as exc:
        return f"the requested schema is invalid: {exc.message}"
    return None if error is None else f"the answer breaks the schema: {error.message}"


def _tokens(response: Any) -> tuple[int, int]:
    usage = getattr(response, "usage", None)
    if usage is None:
        return 0, 0
    return int(getattr(usage, "prompt_tokens", 0) or 0), int(getattr(usage, "completion_tokens", 0) or 0)


class ChatService:
    def __init__(
        self,
        engine: EngineRef,
        catalog: Catalog,
        policy: RoutingPolicy,
        recorder: UsageRecorder,
        metrics: GatewayMetrics,
        budgets: BudgetEnforcer,
        clock: Clock,
        prompts: PromptRegistry | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        self._llm = engine
        self._catalog = catalog
        self._policy = policy
        self._recorder = recorder
        self._metrics = metrics
        self._budgets = budgets
        self._clock = clock
        self._prompts = prompts
        self._tracer = tracer or NoOpTracer()

    async def handle(self, body: Any, ctx: CallContext) -> Response:
        engine, call = await self._begin(body, ctx)
        if call.request.stream:
            return await self._stream(engine, call)
        return await self._complete(engine, call)

    async def complete(self, body: dict[str, Any], ctx: CallContext) -> Completion:
        """A non-streaming call made in process (agents): routed, budgeted and recorded like an API call."""
        engine, call = await self._begin({**body, "stream": False}, ctx)
        response, served, usage, reason = await self._run(engine, call)
        try:
            content = response.choices[0].message.content or ""
        except (AttributeError, IndexError):
            content = ""
        return Completion(
            content=content,
            model=served.entry.label,
            tier=usage.tier,
            route_reason=reason,
            cost_usd=usage.cost_usd,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            prompt_name=call.prompt.name if call.prompt else None,
            prompt_version=call.prompt.version if call.prompt else None,
            request_id=ctx.request_id,
        )

    async def _begin(self, body: Any, ctx: CallContext) -> tuple[Engine, _Call]:
        request = self._parse(body)
        ctx.principal.require_spend()
        ctx.principal.require_model(request.model)
        prompt: PromptCall | None = None
        if request.prompt is not None:
            # Rendered before routing: the prompt's messages, tier hint and response schema decide the route.
            prompt = await self._prepare(request.prompt)
            request = self._parse(prompt.apply(body))
        engine = await self._llm.get()
        plan = await self._budgets.plan(ctx.principal, request.user)
        # Built from the validated, named fields only: nothing the client sent reaches litellm as an option.
        payload = request.upstream_params()
        messages = payload["messages"]
        counted: list[int] = []

        def count() -> int:
            if not counted:
                counted.append(engine.count_tokens(messages))
            return counted[0]

        decision = self._policy.decide(
            request, count, prompt_tier=prompt.tier if prompt else None, downgrade=plan.downgrade
        )
        allowed = self._catalog.extra_params(decision.group)
        if decision.cascade:
            allowed &= self._catalog.extra_params("plus")
        extras = extra_body(request, allowed, decision.group)
        if extras:
            payload["extra_body"] = extras
        self._metrics.route_decisions.labels(decision.tier or "none", decision.reason).inc()
        return engine, _Call(request, payload, decision, ctx, plan, count, prompt)

    def _parse(self, body: Any) -> ChatRequest:
        request: ChatRequest = parse(ChatRequest, body)
        unknown_fields(request, self._catalog.any_extra_params(), "/v1/chat/completions")
        return request

    async def _prepare(self, ref: PromptRef) -> PromptCall:
        if self._prompts is None:
            raise InvalidRequest("this gateway has no prompt registry; send messages instead", param="prompt")
        return await prepare(self._prompts, ref)

    async def _admit(self, engine: Engine, call: _Call, group: str) -> Admission:
        """Reserve the worst case for one upstream call and cap max_tokens to what was reserved."""
        requested = call.request.max_completion_tokens or call.request.max_tokens
        if engine.only_echo(group):
            # The local stand-in costs nothing: its calls are recorded as usage but never charged to a budget
            # (nor to a key's rate limits), so trying aitp without a model cannot exhaust a real budget.
            return Admission(reservation=None, budgets=[], key_id=call.ctx.key_id, has_tpm=False, has_rpm=False)
        allowance = self._budgets.completion_allowance(requested)
        price = engine.worst_price(group)
        with self._tracer.start_as_current_span("ledger.reserve"):
            admission = await self._budgets.admit(
                call.plan,
                call.ctx.principal,
                self._budgets.prompt_estimate(call.count()) if _budgeted(call) else 0,
                allowance,
                price.input_per_token,
                price.output_per_token,
            )
        if (
            admission.reservation is not None
            and admission.max_tokens is not None
            and (requested is None or admission.max_tokens < requested)
        ):
            field = "max_completion_tokens" if call.request.max_completion_tokens else "max_tokens"
            call.payload[field] = admission.max_tokens
            call.capped = admission.max_tokens
        return admission

    def _usage(self, call: _Call) -> Usage:
        return Usage(
            request_id=call.ctx.request_id,
            endpoint="chat",
            model_requested=call.request.model,
            created_at=self._clock.now(),
            stream=call.request.stream,
            project_id=call.ctx.project_id,
            key_id=call.ctx.key_id,
            user=call.request.user,
            tier=call.decision.tier,
            route_reason=call.decision.reason,
            prompt_name=call.prompt.name if call.prompt else None,
            prompt_version=call.prompt.version if call.prompt else None,
            task_id=call.ctx.task_id,
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
            model = usage.model_used or "none"
            self._metrics.tokens.labels("prompt", tier, model).inc(usage.prompt_tokens)
            self._metrics.tokens.labels("completion", tier, model).inc(usage.completion_tokens)
            self._metrics.spend.labels(tier, model).inc(usage.cost_usd)
            plus = self._llm.current().tier_price("plus")
            self._metrics.spend_all_plus.labels(tier).inc(plus.cost(usage.prompt_tokens, usage.completion_tokens))

    async def _settle(self, admission: Admission, usage: Usage) -> None:
        if usage.prompt_tokens or usage.completion_tokens:
            with self._tracer.start_as_current_span("ledger.settle"):
                await self._budgets.settle(admission, usage.prompt_tokens, usage.completion_tokens, usage.cost_usd)
        else:
            await self._release(admission)

    async def _release(self, admission: Admission) -> None:
        with self._tracer.start_as_current_span("ledger.release"):
            await self._budgets.release(admission)

    async def _call(self, engine: Engine, group: str, call: _Call, usage: Usage) -> tuple[Any, Served, Admission]:
        admission = await self._admit(engine, call, group)
        try:
            with upstream_span(self._tracer, self._metrics.upstream_duration.labels("chat"), group, usage) as span:
                response, served = await engine.complete(group, call.payload)
                served_attributes(span, served, response)
        except asyncio.CancelledError:
            usage.status = "client_disconnected"
            usage.http_status = 499
            self._finish(usage, call.ctx)
            with anyio.CancelScope(shield=True):
                await self._release(admission)
            raise
        except Exception as exc:
            error = engine.map_error(exc)
            usage.status = "error"
            usage.http_status = error.status
            usage.error_type = error.code
            self._finish(usage, call.ctx)
            await self._release(admission)
            raise error from None
        return response, served, admission

    async def _complete(self, engine: Engine, call: _Call) -> Response:
        response, served, usage, reason = await self._run(engine, call)
        headers = _headers(served, usage, reason, call)
        return Response(response.model_dump_json(exclude_none=True), media_type="application/json", headers=headers)

    async def _run(self, engine: Engine, call: _Call) -> tuple[Any, Served, Usage, str]:
        usage = self._usage(call)
        response, served, admission = await self._call(engine, call.decision.group, call, usage)
        self._account(usage, engine, served, response)
        await self._settle(admission, usage)
        reason = _reason(call.decision, served)
        schema = call.request.json_schema
        if call.decision.cascade and schema is not None:
            failure = _schema_failure(response, schema)
            if failure is not None:
                # The turbo answer is paid for; record it, then re-ask plus once.
                usage.status = "schema_failed"
                usage.route_reason = reason
                self._finish(usage, call.ctx)
                log.info("cascade to plus", extra={"request_id": call.ctx.request_id, "why": failure})
                turbo_upstream_ms = usage.upstream_ms
                usage = self._usage(call)
                # The plus row's latency runs from the request's start, so its upstream time holds both calls.
                usage.upstream_ms = turbo_upstream_ms
                reason = f"{call.decision.reason}+cascade"
                usage.route_reason = reason
                response, served, admission = await self._call(engine, "plus", call, usage)
                self._account(usage, engine, served, response)
                await self._settle(admission, usage)
        usage.route_reason = reason
        self._finish(usage, call.ctx)
        return response, served, usage, reason

    async def _stream(self, engine: Engine, call: _Call) -> Response:
        usage = self._usage(call)
        options = call.request.stream_options.model_dump(exclude_none=True) if call.request.stream_options else {}
        call.payload["stream"] = True
        call.payload["stream_options"] = {**options, "include_usage": True}
        stream, served, admission = await self._call(engine, call.decision.group, call, usage)
        reason = _reason(call.decision, served)
        usage.route_reason = reason
        usage.model_used = served.entry.label
        usage.deployment = served.entry.name
        usage.tier = served.entry.tier or usage.tier

        async def done() -> None:
            self._finish(usage, call.ctx)
            await self._settle(admission, usage)

        relay = StreamRelay(
            stream=stream,
            engine=engine,
            served=served,
            usage=usage,
            messages=call.payload["messages"],
            client_wants_usage=bool(options.get("include_usage")),
            on_done=done,
        )
        headers = _headers(served, usage, reason, call, streaming=True)
        return StreamingResponse(relay, media_type="text/event-stream", headers=headers)


@dataclass(slots=True)
class _Call:
    """One client request on its way through the service."""

    request: ChatRequest
    payload: dict[str, Any]
    decision: RouteDecision
    ctx: CallContext
    plan: Plan
    count: Callable[[], int]
    prompt: PromptCall | None = None
    capped: int | None = None


def _budgeted(call: _Call) -> bool:
    principal = call.ctx.principal
    return bool(call.plan.budgets) or principal.tpm is not None or principal.rpm is not None


def _reason(decision: RouteDecision, served: Served) -> str:
    if served.group != decision.group:
        return f"{decision.reason}+fallback_{decision.group}_to_{served.group}"
    return decision.reason


def _headers(served: Served, usage: Usage, reason: str, call: _Call, streaming: bool = False) -> dict[str, str]:
    headers = {
        "x-aitp-model": served.entry.label,
        "x-aitp-tier": usage.tier or "none",
        "x-aitp-route-reason": reason,
        # A stream's cost is known only at its end: it comes in the final usage chunk ("aitp.cost_usd").
        "x-aitp-cost-usd": "pending" if streaming else f"{usage.cost_usd:.8f}",
        "cache-control": "no-cache",
    }
    if call.prompt is not None:
        headers["x-aitp-prompt"] = call.prompt.tag
    if call.capped is not None:
        # Budgets reserve the worst case; the completion was capped to what was reserved.
        headers["x-aitp-max-tokens"] = str(call.capped)
    return headers
