"""Cascade on schema failure, client disconnects, and the echo stand-in."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.conftest import PostgresDatabases, Server, ServerFactory, gateway_config
from tests.fakes.llm_upstream import FakeUpstream, Reply

from .test_chat import USAGE_BY_ID, client

SCHEMA = {
    "type": "object",
    "properties": {"cases": {"type": "array", "items": {"type": "string"}}},
    "required": ["cases"],
}
SCHEMA_FORMAT = {"type": "json_schema", "json_schema": {"name": "cases", "schema": SCHEMA}}


@pytest.fixture(scope="module")
async def cascading(fake: FakeUpstream, server_factory: ServerFactory) -> Server:
    config = gateway_config(fake, routing={"json_schema_tier": "turbo"})
    return await asyncio.to_thread(server_factory, config)


async def test_turbo_answer_failing_schema_is_re_asked_on_plus(cascading: Server, fake: FakeUpstream) -> None:
    fake.script("qwen-turbo", Reply(content='{"wrong": 1}', prompt_tokens=5, completion_tokens=4, delay_ms=100))
    fake.script("qwen-plus", Reply(content='{"cases": ["a", "b"]}', prompt_tokens=5, completion_tokens=8, delay_ms=100))
    raw = client(cascading).chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "cases"}], response_format=SCHEMA_FORMAT
    )
    assert raw.parse().choices[0].message.content == '{"cases": ["a", "b"]}'
    assert raw.headers["x-aitp-tier"] == "plus"
    assert raw.headers["x-aitp-route-reason"] == "json_schema+cascade"
    rows = await cascading.wait_rows(USAGE_BY_ID, count=2, rid=raw.headers["x-request-id"])
    assert [(r["tier"], r["status"]) for r in rows] == [("turbo", "schema_failed"), ("plus", "ok")]
    assert float(raw.headers["x-aitp-cost-usd"]) == pytest.approx(rows[1]["cost_usd"])
    # Both rows' latencies run from the request's start, so the plus row's upstream time holds both calls.
    turbo, plus = rows
    assert 90 <= turbo["upstream_ms"] <= turbo["latency_ms"]
    assert turbo["upstream_ms"] + 90 <= plus["upstream_ms"] <= plus["latency_ms"]


def test_valid_turbo_answer_is_not_re_asked(cascading: Server, fake: FakeUpstream) -> None:
    fake.script("qwen-turbo", Reply(content='{"cases": []}'))
    raw = client(cascading).chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "cases"}], response_format=SCHEMA_FORMAT
    )
    assert raw.headers["x-aitp-tier"] == "turbo"
    assert raw.headers["x-aitp-route-reason"] == "json_schema"
    assert fake.requests_for("qwen-plus") == []


def test_a_backtracking_pattern_in_the_schema_cannot_stall_the_check(cascading: Server, fake: FakeUpstream) -> None:
    """The client writes the schema: its patterns run on RE2, so ^(a+)+$ takes microseconds, not minutes."""
    schema = {"type": "object", "properties": {"id": {"type": "string", "pattern": "^(a+)+$"}}, "required": ["id"]}
    fmt = {"type": "json_schema", "json_schema": {"name": "id", "schema": schema}}
    fake.script("qwen-turbo", Reply(content='{"id": "' + "a" * 40 + '!"}'))
    fake.script("qwen-plus", Reply(content='{"id": "aaa"}'))
    started = time.monotonic()
    raw = client(cascading).chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "id"}], response_format=fmt
    )
    assert time.monotonic() - started < 5
    assert raw.headers["x-aitp-route-reason"] == "json_schema+cascade"
    assert raw.parse().choices[0].message.content == '{"id": "aaa"}'


def test_not_json_at_all_also_cascades(cascading: Server, fake: FakeUpstream) -> None:
    fake.script("qwen-turbo", Reply(content="Sure! Here are your cases: ..."))
    fake.script("qwen-plus", Reply(content='{"cases": ["x"]}'))
    raw = client(cascading).chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "cases"}], response_format=SCHEMA_FORMAT
    )
    assert raw.headers["x-aitp-route-reason"] == "json_schema+cascade"


def test_explicit_turbo_is_not_cascaded(cascading: Server, fake: FakeUpstream) -> None:
    fake.script("qwen-turbo", Reply(content="not json"))
    completion = client(cascading).chat.completions.create(
        model="turbo", messages=[{"role": "user", "content": "cases"}], response_format=SCHEMA_FORMAT
    )
    assert completion.choices[0].message.content == "not json"
    assert fake.requests_for("qwen-plus") == []


async def test_disconnect_mid_stream_cancels_upstream_and_is_charged(gateway: Server, fake: FakeUpstream) -> None:
    words = " ".join(f"w{i}" for i in range(40))
    fake.script("qwen-turbo", Reply(content=words, chunks=40, chunk_delay_ms=100))
    cancelled_before = fake.state.cancelled
    async with (
        httpx.AsyncClient(timeout=20) as http,
        http.stream(
            "POST",
            f"{gateway.v1}/chat/completions",
            json={"model": "turbo", "stream": True, "messages": [{"role": "user", "content": "long"}]},
            headers=gateway.admin_headers,
        ) as response,
    ):
        rid = response.headers["x-request-id"]
        seen = 0
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                seen += 1
            if seen >= 4:
                break
    # leaving the block closes the connection mid-stream
    deadline = time.monotonic() + 5
    while fake.state.cancelled == cancelled_before and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert fake.state.cancelled == cancelled_before + 1, "the upstream stream was closed early"
    [row] = await gateway.wait_rows(USAGE_BY_ID, rid=rid)
    assert row["status"] == "client_disconnected"
    assert 0 < row["completion_tokens"] < 40, "charged for what was generated, not the whole answer"
    assert row["prompt_tokens"] > 0 and row["cost_usd"] > 0


@pytest.fixture(scope="module")
async def echo_only(server_factory: ServerFactory, pg_databases: PostgresDatabases) -> Server:
    # Default settings: dashscope tiers without DASHSCOPE_API_KEY -> the echo stand-in answers.
    return await asyncio.to_thread(server_factory, {"usage": {"flush_interval_s": 0.05}})


async def test_no_provider_key_answers_through_local_echo(echo_only: Server) -> None:
    c = client(echo_only)
    raw = c.chat.completions.with_raw_response.create(model="auto", messages=[{"role": "user", "content": "你好"}])
    text = raw.parse().choices[0].message.content or ""
    assert text.startswith("[local/echo: no LLM provider is configured") and text.endswith("你好")
    assert raw.headers["x-aitp-model"] == "local/echo"
    models = {m.id: m for m in c.models.list()}
    assert "echo stand-in" in models["turbo"].model_extra["description"]
    assert models["local/echo"].owned_by == "aitp-local"
    stream = c.chat.completions.create(model="plus", messages=[{"role": "user", "content": "流"}], stream=True)
    assert "".join(ch.choices[0].delta.content or "" for ch in stream if ch.choices).endswith("流")
    [row] = await echo_only.wait_rows(USAGE_BY_ID, rid=raw.headers["x-request-id"])
    assert row["model_used"] == "local/echo" and row["cost_usd"] == 0
