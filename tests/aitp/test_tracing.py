"""OpenTelemetry spans of the app in process (httpx's ASGI transport), caught by the SDK's in-memory exporter.

(And the metrics the Grafana panels read, from the same app's ``/metrics``.)

A request is a server span with the ledger and the upstream call inside it; a
task submitted by a request carries the request's trace context in its message,
so the task, its steps and its model calls are in the request's trace.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from agents.tasks.kinds import KindRegistry
from agents.tasks.runtime import TaskRuntime
from agents.tasks.service import TaskService
from agents.tasks.system import SLEEP
from aitp.app import create_app
from core.clock import SystemClock
from core.db import create_engine, migrate
from core.identity.principal import Principal
from core.settings import Settings, TracingSettings
from core.tracing import Tracing
from tests.agents.answers import LOGIN_ZH, valid_answer
from tests.conftest import gateway_config
from tests.fakes.llm_upstream import FakeUpstream, Reply

ADMIN_KEY = "sk-aitp-test-admin-" + secrets.token_urlsafe(24)
MEMBER = Principal(key_id="km", project_id="traced", role="member")


@dataclass
class Traced:
    http: httpx.AsyncClient
    spans: InMemorySpanExporter

    async def key(self, project: str) -> str:
        created = await self.http.post("/api/projects", json={"name": project})
        assert created.status_code == 201, created.text
        body = {"project": project, "name": "k", "role": "member"}
        response = await self.http.post("/api/keys", json=body)
        assert response.status_code == 201, response.text
        budget = {"project": project, "limit_tokens": 1_000_000, "action": "block"}
        assert (await self.http.put("/api/budgets", json=budget)).status_code in (200, 201)
        return str(response.json()["key"])

    def of_trace(self, trace_id: int) -> list[ReadableSpan]:
        return [s for s in self.spans.get_finished_spans() if s.context is not None and s.context.trace_id == trace_id]


@pytest.fixture(scope="module")
async def traced(fake: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Traced]:
    data = tmp_path_factory.mktemp("traced")
    config = gateway_config(fake, tasks={"embedded_threads": 2}, generation={"retrieval_k": 0})
    settings = Settings(admin_key=SecretStr(ADMIN_KEY), data_dir=data, mcp={"enabled": False}, **config)
    exporter = InMemorySpanExporter()
    tracing = Tracing.from_settings(TracingSettings(enabled=True), exporter=exporter)
    app = create_app(settings, tracing=tracing)
    transport = httpx.ASGITransport(app=app)
    headers = {"authorization": f"Bearer {ADMIN_KEY}"}
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://aitp", headers=headers, timeout=30) as http,
    ):
        yield Traced(http, exporter)
    tracing.shutdown()


def one(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, (name, [s.name for s in spans])
    return found[0]


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id


async def test_a_request_is_a_server_span_holding_ledger_and_upstream(traced: Traced) -> None:
    key = await traced.key("tr-" + secrets.token_hex(3))
    trace_id = secrets.randbits(128)
    caller_span = secrets.randbits(64)
    response = await traced.http.post(
        "/v1/chat/completions",
        json={"model": "turbo", "messages": [{"role": "user", "content": "hello"}]},
        headers={"authorization": f"Bearer {key}", "traceparent": f"00-{trace_id:032x}-{caller_span:016x}-01"},
    )
    assert response.status_code == 200, response.text
    spans = traced.of_trace(trace_id)  # the caller's trace continues here
    server = one(spans, "POST /v1/chat/completions")
    assert server.kind == SpanKind.SERVER and parent_of(server) == caller_span
    assert server.attributes is not None
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["aitp.request_id"] == response.headers["x-request-id"]
    reserve, upstream, settle = one(spans, "ledger.reserve"), one(spans, "upstream turbo"), one(spans, "ledger.settle")
    assert {parent_of(reserve), parent_of(upstream), parent_of(settle)} == {span_id(server)}
    assert reserve.end_time is not None and upstream.start_time is not None and reserve.end_time <= upstream.start_time
    assert upstream.end_time is not None and settle.start_time is not None and upstream.end_time <= settle.start_time
    assert upstream.kind == SpanKind.CLIENT and upstream.attributes is not None
    assert upstream.attributes["gen_ai.response.model"] == response.headers["x-aitp-model"]
    assert upstream.attributes["aitp.deployment"] == "qwen-turbo"
    output_tokens = upstream.attributes["gen_ai.usage.output_tokens"]
    assert isinstance(output_tokens, int) and output_tokens > 0


async def test_an_upstream_failure_marks_its_span(traced: Traced, fake: FakeUpstream) -> None:
    key = await traced.key("tf-" + secrets.token_hex(3))
    fake.script("qwen-turbo", *[Reply(status=500)] * 4)
    response = await traced.http.post(
        "/v1/chat/completions",
        json={"model": "turbo", "messages": [{"role": "user", "content": "hello"}]},
        headers={"authorization": f"Bearer {key}"},
    )
    assert response.status_code >= 500
    server = next(
        s
        for s in traced.spans.get_finished_spans()
        if s.attributes and s.attributes.get("aitp.request_id") == response.headers["x-request-id"]
    )
    assert server.context is not None
    spans = traced.of_trace(server.context.trace_id)
    upstream = one(spans, "upstream turbo")
    assert not upstream.status.is_ok and upstream.events and upstream.events[0].name == "exception"
    assert one(spans, "ledger.release").parent is not None  # the reservation was given back, traced
    assert not server.status.is_ok


async def test_a_task_joins_the_trace_of_the_request_that_submitted_it(traced: Traced, fake: FakeUpstream) -> None:
    key = await traced.key("tt-" + secrets.token_hex(3))
    fake.script("qwen-plus", Reply(content=valid_answer("zh")))
    submitted = await traced.http.post(
        "/api/tasks",
        json={"kind": "testcase.generate", "input": {"requirement": LOGIN_ZH, "module": "登录"}},
        headers={"authorization": f"Bearer {key}"},
    )
    assert submitted.status_code == 201, submitted.text
    task = await wait_done(traced, key, submitted.json()["id"])
    assert task["status"] == "succeeded", task
    server = next(
        s
        for s in traced.spans.get_finished_spans()
        if s.attributes and s.attributes.get("aitp.request_id") == submitted.headers["x-request-id"]
    )
    assert server.name == "POST /api/tasks" and server.context is not None
    spans = traced.of_trace(server.context.trace_id)
    run = one(spans, "task testcase.generate")
    assert run.kind == SpanKind.CONSUMER and parent_of(run) == span_id(server)
    assert run.attributes is not None and run.attributes["aitp.task.outcome"] == "succeeded"
    steps = {s.name: s for s in spans if s.name.startswith("step ")}
    assert {"step load_requirement", "step call_llm", "step validate", "step store"} <= set(steps)
    assert {parent_of(s) for s in steps.values()} == {span_id(run)}
    # The model call of step call_llm: inside that step, with its ledger spans, all in the request's trace.
    upstream = one(spans, "upstream plus")
    assert parent_of(upstream) == span_id(steps["step call_llm"])
    assert upstream.attributes is not None and upstream.attributes["aitp.task_id"] == task["id"]
    ledger = [s for s in spans if s.name.startswith("ledger.")]
    assert {s.name for s in ledger} == {"ledger.reserve", "ledger.settle"}
    assert {parent_of(s) for s in ledger} == {span_id(steps["step call_llm"])}


async def wait_done(traced: Traced, key: str, task_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        task: dict[str, Any] = (
            await traced.http.get(f"/api/tasks/{task_id}", headers={"authorization": f"Bearer {key}"})
        ).json()
        if task["status"] in ("succeeded", "failed", "cancelled") or time.monotonic() > deadline:
            return task
        await asyncio.sleep(0.1)


async def test_disabled_tracing_records_nothing_and_adds_no_middleware(
    fake: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> None:
    settings = Settings(admin_key=SecretStr(ADMIN_KEY), data_dir=tmp_path_factory.mktemp("untraced"))
    tracing = Tracing.from_settings(settings.tracing)
    assert not tracing.enabled and tracing.inject() == {}
    app = create_app(settings)
    assert "TracingMiddleware" not in {m.cls.__name__ for m in app.user_middleware}  # type: ignore[attr-defined]


async def test_the_trace_context_crosses_redis_in_the_task_message(tmp_path: Path) -> None:
    """Distributed mode: the message goes through Redis (RedisBroker) and a worker thread picks it up."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/aitp.db")
    await migrate(engine)
    prefix = "aitp-trace-" + secrets.token_hex(4)
    settings = Settings(dev=True, data_dir=tmp_path, redis_url="redis://127.0.0.1:6379/0", redis_prefix=prefix)
    exporter = InMemorySpanExporter()
    tracing = Tracing.from_settings(TracingSettings(enabled=True), exporter=exporter)
    runtime = TaskRuntime(
        settings, engine, CollectorRegistry(), clock=SystemClock(), kinds=KindRegistry([SLEEP]), tracing=tracing
    )
    assert runtime.distributed
    await runtime.start(execute=True, threads=1, api=False)
    try:
        with tracing.tracer.start_as_current_span("submitter") as submitter:
            task, _ = await TaskService(runtime).submit(MEMBER, "system.sleep", {"seconds": 0.05})
        deadline = time.monotonic() + 20
        while not [s for s in exporter.get_finished_spans() if s.name == "task system.sleep"]:
            assert time.monotonic() < deadline, [s.name for s in exporter.get_finished_spans()]
            await asyncio.sleep(0.05)
    finally:
        await runtime.stop()
        await engine.dispose()
        tracing.shutdown()
        client = redis.Redis.from_url(settings.redis_url or "")
        for key in client.scan_iter(match=f"{prefix}*"):
            client.delete(key)
        client.close()
    spans = exporter.get_finished_spans()
    run = one(list(spans), "task system.sleep")
    step = one(list(spans), "step sleeping")
    assert run.context is not None and run.context.trace_id == submitter.get_span_context().trace_id
    assert parent_of(run) == submitter.get_span_context().span_id and parent_of(step) == span_id(run)
    assert run.attributes is not None and run.attributes["aitp.task_id"] == task["id"]


def sample(metrics: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus' text format (0.0 when absent)."""
    for family in text_string_to_metric_families(metrics):
        for found in family.samples:
            if found.name == name and all(found.labels.get(k) == v for k, v in labels.items()):
                return float(found.value)
    return 0.0


async def test_metrics_behind_the_dashboard_panels(traced: Traced) -> None:
    """Spend by model, the all-plus price of the same tokens, upstream time, worker threads, the process."""
    key = await traced.key("tm-" + secrets.token_hex(3))
    before = (await traced.http.get("/metrics")).text
    response = await traced.http.post(
        "/v1/chat/completions",
        json={"model": "turbo", "messages": [{"role": "user", "content": "hello"}]},
        headers={"authorization": f"Bearer {key}"},
    )
    assert response.status_code == 200, response.text
    after = (await traced.http.get("/metrics")).text
    model = response.headers["x-aitp-model"]
    cost = float(response.headers["x-aitp-cost-usd"])

    def grew(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert grew("aitp_spend_usd_total", tier="turbo", model=model) == pytest.approx(cost, rel=1e-6)
    assert grew("aitp_tokens_total", kind="completion", tier="turbo", model=model) > 0
    assert grew("aitp_spend_all_plus_usd_total", tier="turbo") > cost > 0  # plus costs more per token
    assert grew("aitp_upstream_duration_seconds_count", endpoint="chat") == 1
    upstream_s = grew("aitp_upstream_duration_seconds_sum", endpoint="chat")
    assert 0 < upstream_s <= grew("aitp_request_duration_seconds_sum", endpoint="chat")
    assert sample(after, "aitp_task_worker_threads") == 2  # tasks.embedded_threads
    assert sample(after, "process_resident_memory_bytes") > 0
    assert 0 < sample(after, "aitp_disk_free_bytes") <= sample(after, "aitp_disk_total_bytes")
