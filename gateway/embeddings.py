"""Embeddings: a configured embedding deployment, called through the Router."""

from __future__ import annotations

import time
from typing import Any

from opentelemetry.trace import NoOpTracer, Tracer
from starlette.responses import Response

from core.clock import Clock
from core.errors import InvalidRequest, ModelNotFound
from core.settings import TIERS

from .budgets.enforcer import BudgetEnforcer
from .catalog import Catalog
from .chat import CallContext, EngineRef
from .engine import Served
from .metrics import GatewayMetrics
from .schemas import EmbeddingRequest, extra_body, parse, unknown_fields
from .tracing import served_attributes, upstream_span
from .usage import Usage, UsageRecorder


class EmbeddingService:
    def __init__(
        self,
        engine: EngineRef,
        catalog: Catalog,
        recorder: UsageRecorder,
        budgets: BudgetEnforcer,
        metrics: GatewayMetrics,
        clock: Clock,
        tracer: Tracer | None = None,
    ) -> None:
        self._llm = engine
        self._clock = clock
        self._tracer = tracer or NoOpTracer()
        self._catalog = catalog
        self._recorder = recorder
        self._budgets = budgets
        self._metrics = metrics

    def _record(self, usage: Usage) -> None:
        self._recorder.record(usage)
        self._metrics.requests.labels("embeddings", "none", usage.status).inc()
        self._metrics.duration.labels("embeddings").observe(usage.latency_ms / 1000)
        if usage.prompt_tokens:
            model = usage.model_used or "none"
            self._metrics.tokens.labels("prompt", "none", model).inc(usage.prompt_tokens)
            self._metrics.spend.labels("none", model).inc(usage.cost_usd)

    async def handle(self, body: Any, ctx: CallContext) -> Response:
        response, served, usage = await self._run(body, ctx)
        headers = {
            "x-aitp-model": served.entry.label,
            "x-aitp-tier": "none",
            "x-aitp-route-reason": "explicit_model",
            "x-aitp-cost-usd": f"{usage.cost_usd:.8f}",
        }
        return Response(response.model_dump_json(exclude_none=True), media_type="application/json", headers=headers)

    async def embed(self, model: str, texts: list[str], ctx: CallContext) -> list[list[float]]:
        """Vectors for ``texts``, called in process (the knowledge base): budgeted and recorded like an API call."""
        response, _, _ = await self._run({"model": model, "input": texts}, ctx)
        items = sorted(response.data, key=lambda item: _field(item, "index"))
        return [list(_field(item, "embedding")) for item in items]

    async def _run(self, body: Any, ctx: CallContext) -> tuple[Any, Served, Usage]:
        request: EmbeddingRequest = parse(EmbeddingRequest, body)
        unknown_fields(request, self._catalog.any_extra_params(), "/v1/embeddings")
        ctx.principal.require_spend()
        ctx.principal.require_model(request.model)
        self._check_model(request.model)
        engine = await self._llm.get()
        plan = await self._budgets.plan(ctx.principal, request.user)
        texts = request.input if isinstance(request.input, list) else [request.input]
        estimate = sum(len(str(t).encode()) for t in texts)  # bytes bound tokens from above
        price = engine.worst_price(request.model)
        admission = await self._budgets.admit(
            plan, ctx.principal, estimate, 0, price.input_per_token, price.output_per_token
        )
        usage = Usage(
            request_id=ctx.request_id,
            endpoint="embeddings",
            model_requested=request.model,
            created_at=self._clock.now(),
            project_id=ctx.project_id,
            key_id=ctx.key_id,
            user=request.user,
            route_reason="explicit_model",
            task_id=ctx.task_id,
        )
        # Named fields only: nothing the client sent reaches litellm as an option.
        payload = request.upstream_params()
        extras = extra_body(request, self._catalog.extra_params(request.model), request.model)
        if extras:
            payload["extra_body"] = extras
        try:
            duration = self._metrics.upstream_duration.labels("embeddings")
            with upstream_span(self._tracer, duration, request.model, usage) as span:
                response, served = await engine.embed(request.model, payload)
                served_attributes(span, served, response)
        except Exception as exc:
            error = engine.map_error(exc)
            usage.status, usage.http_status, usage.error_type = "error", error.status, error.code
            usage.latency_ms = (time.perf_counter() - ctx.started) * 1000
            self._record(usage)
            await self._budgets.release(admission)
            raise error from None
        tokens = int(getattr(getattr(response, "usage", None), "prompt_tokens", 0) or 0)
        usage.model_used = served.entry.label
        usage.deployment = served.entry.name
        usage.prompt_tokens = tokens
        usage.cost_usd = engine.price(served.entry).cost(tokens, 0)
        usage.latency_ms = (time.perf_counter() - ctx.started) * 1000
        self._record(usage)
        await self._budgets.settle(admission, tokens, 0, usage.cost_usd)
        return response, served, usage

    def _check_model(self, model: str) -> None:
        entry = self._catalog.entries.get(model)
        if model == "auto" or model in TIERS or (entry is not None and entry.is_echo):
            names = [e.name for e in self._catalog.entries.values() if not e.is_echo and e.tier is None]
            hint = f"configured deployments without a tier: {', '.join(names)}" if names else "none is configured"
            raise InvalidRequest(
                f"'{model}' is a chat route; embeddings need an embedding deployment by name ({hint}); "
                "add one to models in aitp.yaml",
                param="model",
            )
        if entry is None:
            raise ModelNotFound(
                f"model '{model}' is not served here; GET /v1/models lists the configured deployments", param="model"
            )


def _field(item: Any, name: str) -> Any:
    return item[name] if isinstance(item, dict) else getattr(item, name)
