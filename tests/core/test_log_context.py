"""JSON log lines of a live ``aitp serve`` carry the request id, the task id and the project of their context.

(And, with tracing on, the trace id of the span they are logged in.)
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import format_trace_id

from core.logging import ContextFilter, add_log_context, bind_log_context, reset_log_context
from core.settings import TracingSettings
from core.tracing import Tracing
from tests.conftest import Server, ServerFactory, gateway_config
from tests.fakes.llm_upstream import FakeUpstream, Reply

SCHEMA = {"type": "object", "properties": {"cases": {"type": "array"}}, "required": ["cases"]}
SCHEMA_FORMAT = {"type": "json_schema", "json_schema": {"name": "cases", "schema": SCHEMA}}


@pytest.fixture(scope="module")
async def server(fake: FakeUpstream, server_factory: ServerFactory) -> Server:
    config = gateway_config(fake, routing={"json_schema_tier": "turbo"}, server={"access_log": True})
    return await asyncio.to_thread(server_factory, config)


def lines(server: Server) -> list[dict[str, Any]]:
    return [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]


def wait_lines(server: Server, match: dict[str, Any], count: int = 1) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10
    while True:
        found = [line for line in lines(server) if all(line.get(k) == v for k, v in match.items())]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_a_request_s_lines_carry_its_id_and_project(server: Server, fake: FakeUpstream) -> None:
    project = "logs-" + secrets.token_hex(3)
    key = server.new_key(project)
    rid = "req-" + secrets.token_hex(6)
    fake.script("qwen-turbo", Reply(content="not json"))  # the turbo answer fails the schema: a cascade line
    fake.script("qwen-plus", Reply(content='{"cases": []}'))
    response = httpx.post(
        f"{server.v1}/chat/completions",
        json={"model": "auto", "messages": [{"role": "user", "content": "cases"}], "response_format": SCHEMA_FORMAT},
        headers={"authorization": f"Bearer {key}", "x-request-id": rid},
        timeout=20,
    )
    assert response.status_code == 200 and response.headers["x-aitp-route-reason"] == "json_schema+cascade"
    found = wait_lines(server, {"request_id": rid}, count=2)
    by_logger = {line["logger"]: line for line in found}
    # Lines from the gateway's code and from uvicorn's access logger (a library that knows nothing of aitp).
    assert set(by_logger) == {"aitp.gateway.chat", "uvicorn.access"}, found
    assert by_logger["aitp.gateway.chat"]["msg"] == "cascade to plus"
    assert "/v1/chat/completions" in by_logger["uvicorn.access"]["msg"]
    assert all(line["project"] == project for line in found)
    assert all("task_id" not in line for line in found)


def test_a_task_s_lines_carry_its_id_kind_and_project(server: Server) -> None:
    project = "tlogs-" + secrets.token_hex(3)
    key = server.new_key(project)
    rid = "sub-" + secrets.token_hex(6)
    submitted = server.api(
        "POST",
        "/api/tasks",
        key=key,
        json={"kind": "system.sleep", "input": {"fail_times": 1}},
        headers={"x-request-id": rid},
    )
    assert submitted.status_code in (200, 201, 202), submitted.text
    task_id = submitted.json()["id"]
    found = wait_lines(server, {"task_id": task_id}, count=2)
    # Two executions: the planned transient failure, then the success after the back-off.
    assert [line["msg"] for line in found] == ["task execution ended: retry", "task execution ended: succeeded"]
    for line in found:
        assert line["project"] == project and line["kind"] == "system.sleep"
        assert "request_id" not in line  # the task runs in a context of its own, not the submitting request's
    submit_lines = wait_lines(server, {"request_id": rid})
    assert len(submit_lines) == 1 and submit_lines[0]["project"] == project
    assert "task_id" not in submit_lines[0]


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_a_line_inside_a_span_carries_its_trace_id_and_explicit_fields_win() -> None:
    tracing = Tracing.from_settings(TracingSettings(enabled=True), exporter=InMemorySpanExporter())
    handler = Collect()
    handler.addFilter(ContextFilter())
    logger = logging.getLogger("aitp.test.log_context")
    logger.addHandler(handler)
    try:
        with tracing.tracer.start_as_current_span("work") as span:
            token = bind_log_context(request_id="r-1")
            add_log_context(project="p-1")
            logger.warning("inside", extra={"request_id": "explicit"})
            reset_log_context(token)
        logger.warning("outside")
    finally:
        logger.removeHandler(handler)
        tracing.shutdown()
    inside, outside = (r.__dict__ for r in handler.records)
    assert inside["trace_id"] == format_trace_id(span.get_span_context().trace_id)
    assert inside["request_id"] == "explicit" and inside["project"] == "p-1"
    assert not {"trace_id", "request_id", "project"} & set(outside)
