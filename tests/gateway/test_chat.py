"""Chat completions through a live ``aitp serve`` with the official openai SDK."""

from __future__ import annotations

import asyncio
import json

import openai
import pytest

from tests.conftest import Server
from tests.fakes.llm_upstream import FakeUpstream, Reply

USAGE_BY_ID = "SELECT * FROM usage_records WHERE request_id = :rid ORDER BY id"


def client(server: Server, key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.v1, api_key=key or server.admin_key, max_retries=0, timeout=20)


def aclient(server: Server, key: str | None = None) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=server.v1, api_key=key or server.admin_key, max_retries=0, timeout=20)


async def test_short_prompt_goes_to_turbo_with_headers_and_usage_row(gateway: Server, fake: FakeUpstream) -> None:
    fake.script("qwen-turbo", Reply(content="pong", prompt_tokens=11, completion_tokens=3))
    raw = client(gateway).chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "ping"}]
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "pong"
    assert completion.usage is not None and completion.usage.prompt_tokens == 11
    assert raw.headers["x-aitp-model"] == "dashscope/qwen-turbo"
    assert raw.headers["x-aitp-tier"] == "turbo"
    assert raw.headers["x-aitp-route-reason"] == "short_prompt"
    # dashscope/qwen-turbo: $0.05/M input, $0.2/M output in litellm's price map
    assert float(raw.headers["x-aitp-cost-usd"]) == pytest.approx(11 * 5e-8 + 3 * 2e-7)
    rid = raw.headers["x-request-id"]
    [row] = await gateway.wait_rows(USAGE_BY_ID, rid=rid)
    assert row["model_requested"] == "auto"
    assert row["model_used"] == "dashscope/qwen-turbo"
    assert row["tier"] == "turbo" and row["route_reason"] == "short_prompt"
    assert (row["prompt_tokens"], row["completion_tokens"]) == (11, 3)
    assert row["cost_usd"] == pytest.approx(11 * 5e-8 + 3 * 2e-7)
    assert row["status"] == "ok" and row["http_status"] == 200 and row["latency_ms"] > 0
    assert fake.requests_for("qwen-turbo")[-1]["messages"] == [{"role": "user", "content": "ping"}]


@pytest.mark.parametrize(
    ("kwargs", "tier", "reason"),
    [
        ({"messages": [{"role": "user", "content": "word " * 200}]}, "plus", "long_prompt"),
        ({"messages": [{"role": "user", "content": "长" * 70}]}, "plus", "long_prompt"),
        ({"messages": [{"role": "user", "content": "短句"}]}, "turbo", "short_prompt"),
        (
            {
                "messages": [{"role": "user", "content": "weather?"}],
                "tools": [{"type": "function", "function": {"name": "w", "parameters": {"type": "object"}}}],
            },
            "plus",
            "tools",
        ),
        (
            {
                "messages": [{"role": "user", "content": "give json"}],
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "x", "schema": {"type": "object"}},
                },
            },
            "plus",
            "json_schema",
        ),
        (
            {"messages": [{"role": "user", "content": "hi"}], "metadata": {"tier": "plus"}},
            "plus",
            "prompt_tier_plus",
        ),
    ],
)
def test_auto_routing_policy(gateway: Server, fake: FakeUpstream, kwargs: dict, tier: str, reason: str) -> None:
    fake.set_default("*", Reply(content='{"ok": true}'))
    raw = client(gateway).chat.completions.with_raw_response.create(model="auto", **kwargs)
    assert raw.headers["x-aitp-tier"] == tier
    assert raw.headers["x-aitp-route-reason"] == reason
    assert raw.headers["x-aitp-model"] == f"dashscope/qwen-{tier}"
    assert len(fake.requests_for(f"qwen-{tier}")) == 1
    # aitp's own routing hint never reaches the provider
    assert "metadata" not in fake.requests_for(f"qwen-{tier}")[0]


def test_explicit_tier_and_deployment_names(gateway: Server, fake: FakeUpstream) -> None:
    c = client(gateway)
    raw = c.chat.completions.with_raw_response.create(model="plus", messages=[{"role": "user", "content": "hi"}])
    assert (raw.headers["x-aitp-tier"], raw.headers["x-aitp-route-reason"]) == ("plus", "explicit_tier")
    raw = c.chat.completions.with_raw_response.create(model="local-vllm", messages=[{"role": "user", "content": "hi"}])
    assert raw.headers["x-aitp-model"] == "hosted_vllm/llama-3-8b"
    assert raw.headers["x-aitp-route-reason"] == "explicit_model"
    assert fake.requests_for("llama-3-8b"), "the request reached the vLLM-style deployment"


def test_parameters_pass_through(gateway: Server, fake: FakeUpstream) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "description": "look up",
                "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
            },
        }
    ]
    fake.script(
        "qwen-plus",
        Reply(
            tool_calls=[{"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"q":"x"}'}}]
        ),
    )
    completion = client(gateway).chat.completions.create(
        model="auto",
        messages=[{"role": "user", "content": "find x"}],
        tools=tools,
        tool_choice="auto",
        temperature=0.3,
        max_tokens=77,
        stop=["END"],
        n=1,
        user="alice",
    )
    call = completion.choices[0].message.tool_calls[0]
    assert call.function.name == "lookup" and json.loads(call.function.arguments) == {"q": "x"}
    sent = fake.requests_for("qwen-plus")[-1]
    assert sent["tools"] == tools
    assert sent["tool_choice"] == "auto"
    assert sent["temperature"] == 0.3
    assert sent["max_tokens"] == 77
    assert sent["stop"] == ["END"]
    assert sent["n"] == 1
    assert sent["user"] == "alice"


def test_json_schema_response_format_passes_through(gateway: Server, fake: FakeUpstream) -> None:
    schema = {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]}
    fake.script("qwen-plus", Reply(content='{"title": "登录测试"}'))
    completion = client(gateway).chat.completions.create(
        model="auto",
        messages=[{"role": "user", "content": "one case"}],
        response_format={"type": "json_schema", "json_schema": {"name": "case", "schema": schema, "strict": True}},
    )
    assert json.loads(completion.choices[0].message.content) == {"title": "登录测试"}
    sent = fake.requests_for("qwen-plus")[-1]
    assert sent["response_format"]["type"] == "json_schema"
    assert sent["response_format"]["json_schema"]["schema"] == schema


async def test_streaming_relays_chunks_and_reports_usage(gateway: Server, fake: FakeUpstream) -> None:
    fake.script(
        "qwen-turbo", Reply(content="one two three four five six", chunks=6, prompt_tokens=9, completion_tokens=6)
    )
    c = client(gateway)
    with c.chat.completions.with_streaming_response.create(
        model="auto",
        messages=[{"role": "user", "content": "count"}],
        stream=True,
        stream_options={"include_usage": True},
    ) as response:
        assert response.headers["x-aitp-tier"] == "turbo"
        assert response.headers["x-aitp-model"] == "dashscope/qwen-turbo"
        rid = response.headers["x-request-id"]
        chunks = list(response.parse())
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == "one two three four five six"
    final = [ch for ch in chunks if ch.usage is not None]
    usage = final[-1].usage if final else None
    assert usage is not None and usage.prompt_tokens == 9 and usage.completion_tokens == 6
    assert final[-1].model_extra["aitp"]["cost_usd"] == pytest.approx(9 * 5e-8 + 6 * 2e-7)
    assert fake.requests_for("qwen-turbo")[-1]["stream_options"] == {"include_usage": True}
    [row] = await gateway.wait_rows(USAGE_BY_ID, rid=rid)
    assert row["stream"] and row["status"] == "ok"
    assert (row["prompt_tokens"], row["completion_tokens"]) == (9, 6)


async def test_stream_without_client_usage_still_accounts(gateway: Server, fake: FakeUpstream) -> None:
    fake.script("qwen-turbo", Reply(content="a b c", chunks=3, prompt_tokens=4, completion_tokens=3))
    stream = client(gateway).chat.completions.create(
        model="turbo", messages=[{"role": "user", "content": "x"}], stream=True
    )
    chunks = list(stream)
    assert all(ch.usage is None for ch in chunks), "usage is only sent to clients that ask for it"
    # aitp asked the upstream for usage anyway
    assert fake.requests_for("qwen-turbo")[-1]["stream_options"] == {"include_usage": True}
    rows = await gateway.wait_rows(
        "SELECT * FROM usage_records WHERE stream AND prompt_tokens = 4 AND completion_tokens = 3"
    )
    assert rows


async def test_async_client_concurrent_calls(gateway: Server, fake: FakeUpstream) -> None:
    async with aclient(gateway) as c:
        results = await asyncio.gather(
            *[
                c.chat.completions.create(model="auto", messages=[{"role": "user", "content": f"n{i}"}])
                for i in range(25)
            ]
        )
    contents = sorted(r.choices[0].message.content or "" for r in results)
    assert contents == sorted(f"fake qwen-turbo: n{i}" for i in range(25))


async def test_async_streaming(gateway: Server, fake: FakeUpstream) -> None:
    fake.script("qwen-plus", Reply(content="流式 输出 正常", chunks=3))
    async with aclient(gateway) as c:
        stream = await c.chat.completions.create(model="plus", messages=[{"role": "user", "content": "x"}], stream=True)
        text = "".join([ch.choices[0].delta.content or "" async for ch in stream if ch.choices])
    assert text == "流式 输出 正常"


def test_embeddings(gateway: Server, fake: FakeUpstream) -> None:
    raw = client(gateway).embeddings.with_raw_response.create(model="text-embedding-v3", input=["需求", "case"])
    result = raw.parse()
    assert len(result.data) == 2 and len(result.data[0].embedding) == 16
    assert raw.headers["x-aitp-model"] == "openai/text-embedding-v3"
    assert float(raw.headers["x-aitp-cost-usd"]) > 0


def test_embeddings_refuse_chat_routes(gateway: Server) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client(gateway).embeddings.create(model="turbo", input="x")
    assert info.value.body["param"] == "model"
    assert "text-embedding-v3" in info.value.body["message"]


def test_models_lists_routes_and_deployments(gateway: Server) -> None:
    ids = [m.id for m in client(gateway).models.list()]
    assert ids[:3] == ["auto", "turbo", "plus"]
    assert {"qwen-turbo", "qwen-plus", "local-vllm", "text-embedding-v3", "local/echo"} <= set(ids)
