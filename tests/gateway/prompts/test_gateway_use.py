"""Registry prompts in chat requests, through the openai SDK (``extra_body={"prompt": …}``)."""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from typing import Any

import openai
import pytest
import yaml

from tests.conftest import Server, ServerFactory
from tests.fakes.llm_upstream import FakeUpstream, Reply
from tests.gateway.test_chat import USAGE_BY_ID, aclient, client

from .conftest import CASES_SCHEMA, published, spec, unique

MSG = [{"role": "user", "content": "also cover Safari"}]


async def test_prompt_renders_before_the_request_messages(prompt_server: Server, fake: FakeUpstream) -> None:
    name = unique()
    published(prompt_server, spec(name))
    fake.script("qwen-turbo", Reply(content="ideas", prompt_tokens=20, completion_tokens=5))
    raw = client(prompt_server).chat.completions.with_raw_response.create(
        model="auto", messages=MSG, extra_body={"prompt": {"name": name, "variables": {"topic": "登录", "count": 5}}}
    )
    assert raw.parse().choices[0].message.content == "ideas"
    assert raw.headers["x-aitp-prompt"] == f"{name}@1"
    assert raw.headers["x-aitp-route-reason"] == "short_prompt"
    sent = fake.requests_for("qwen-turbo")[-1]
    assert sent["messages"] == [
        {"role": "system", "content": "You write 5 short test ideas."},
        {"role": "user", "content": "Write about 登录."},
        *MSG,
    ]
    assert "prompt" not in sent, "the prompt reference never reaches the provider"
    [row] = await prompt_server.wait_rows(USAGE_BY_ID, rid=raw.headers["x-request-id"])
    assert (row["prompt_name"], row["prompt_version"]) == (name, 1)
    assert (row["prompt_tokens"], row["completion_tokens"]) == (20, 5)


def test_a_prompt_needs_no_messages(prompt_server: Server, fake: FakeUpstream) -> None:
    name = unique()
    published(prompt_server, spec(name))
    ref = {"prompt": {"name": name, "variables": {"topic": "搜索"}}}
    c = client(prompt_server)
    no_messages: list[Any] = [[], openai.omit]
    for messages in no_messages:
        raw = c.chat.completions.with_raw_response.create(model="auto", messages=messages, extra_body=ref)
        assert raw.headers["x-aitp-prompt"] == f"{name}@1"
        assert fake.requests_for("qwen-turbo")[-1]["messages"][-1] == {"role": "user", "content": "Write about 搜索."}
    with pytest.raises(openai.BadRequestError) as info:
        c.chat.completions.create(model="auto", messages=[])
    assert info.value.body["param"] == "messages", "without a prompt, messages are still required"


def test_bad_prompt_references(prompt_server: Server) -> None:
    name = unique()
    published(prompt_server, spec(name))
    c = client(prompt_server)

    def ask(prompt: dict) -> None:
        c.chat.completions.create(model="auto", messages=MSG, extra_body={"prompt": prompt})

    with pytest.raises(openai.BadRequestError) as bad:
        ask({"name": name, "variables": {"count": "many", "topic": 7}})
    assert bad.value.body["code"] == "invalid_prompt_variables"
    assert bad.value.body["param"] == "prompt.variables"
    assert "'prompt.variables.count': 'many' is not of type 'integer'" in bad.value.body["message"]
    assert "'prompt.variables.topic': 7 is not of type 'string'" in bad.value.body["message"]
    with pytest.raises(openai.BadRequestError) as missing:
        ask({"name": name})
    assert "'prompt.variables.topic' is required" in missing.value.body["message"]
    with pytest.raises(openai.NotFoundError) as unknown:
        ask({"name": "no.such.prompt", "variables": {}})
    assert unknown.value.body["code"] == "prompt_not_found" and unknown.value.body["param"] == "prompt.name"
    with pytest.raises(openai.NotFoundError) as version:
        ask({"name": name, "version": 4, "variables": {"topic": "x"}})
    assert version.value.body["code"] == "prompt_version_not_found"
    assert version.value.body["param"] == "prompt.version"
    with pytest.raises(openai.NotFoundError) as label:
        ask({"name": name, "label": "beta", "variables": {"topic": "x"}})
    assert label.value.body["code"] == "prompt_label_not_found"
    with pytest.raises(openai.BadRequestError) as both:
        ask({"name": name, "version": 1, "label": "production"})
    assert both.value.body["param"] == "prompt"
    with pytest.raises(openai.BadRequestError) as extra:
        ask({"name": name, "variables": {"topic": "x"}, "colour": "red"})
    assert extra.value.body["param"] == "prompt.colour"


def test_tier_hint_feeds_routing(prompt_server: Server, fake: FakeUpstream) -> None:
    c = client(prompt_server)
    ref = {"prompt": {"name": "qa.heavy", "variables": {"topic": "支付"}}}
    raw = c.chat.completions.with_raw_response.create(model="auto", messages=[], extra_body=ref)
    assert (raw.headers["x-aitp-tier"], raw.headers["x-aitp-route-reason"]) == ("plus", "prompt_tier_plus")
    assert raw.headers["x-aitp-prompt"] == "qa.heavy@1"
    explicit = c.chat.completions.with_raw_response.create(model="turbo", messages=[], extra_body=ref)
    assert explicit.headers["x-aitp-tier"] == "turbo", "an explicit tier beats the prompt's hint"


async def test_response_schema_drives_the_cascade(prompt_server: Server, fake: FakeUpstream) -> None:
    fake.script("qwen-turbo", Reply(content='{"wrong": true}', prompt_tokens=6, completion_tokens=3))
    fake.script("qwen-plus", Reply(content='{"cases": ["a"]}', prompt_tokens=6, completion_tokens=7))
    raw = client(prompt_server).chat.completions.with_raw_response.create(
        model="auto", messages=[], extra_body={"prompt": {"name": "qa.cases", "variables": {"topic": "注册"}}}
    )
    assert raw.parse().choices[0].message.content == '{"cases": ["a"]}'
    assert raw.headers["x-aitp-route-reason"] == "json_schema+cascade"
    assert raw.headers["x-aitp-tier"] == "plus"
    sent = fake.requests_for("qwen-turbo")[-1]["response_format"]
    assert sent == {"type": "json_schema", "json_schema": {"name": "qa_cases", "schema": CASES_SCHEMA}}
    rows = await prompt_server.wait_rows(USAGE_BY_ID, count=2, rid=raw.headers["x-request-id"])
    assert [(r["tier"], r["status"], r["prompt_name"], r["prompt_version"]) for r in rows] == [
        ("turbo", "schema_failed", "qa.cases", 1),
        ("plus", "ok", "qa.cases", 1),
    ]


def test_turbo_hint_with_a_schema_still_cascades(prompt_server: Server, fake: FakeUpstream) -> None:
    fake.script("qwen-turbo", Reply(content="not json"))
    fake.script("qwen-plus", Reply(content='{"cases": []}'))
    raw = client(prompt_server).chat.completions.with_raw_response.create(
        model="auto", messages=[], extra_body={"prompt": {"name": "qa.light", "variables": {"topic": "x"}}}
    )
    assert raw.headers["x-aitp-route-reason"] == "prompt_tier_turbo+cascade"


def test_the_clients_response_format_wins(prompt_server: Server, fake: FakeUpstream) -> None:
    mine = {"type": "json_schema", "json_schema": {"name": "mine", "schema": {"type": "object"}}}
    fake.script("qwen-turbo", Reply(content="{}"))
    client(prompt_server).chat.completions.create(
        model="auto",
        messages=[],
        response_format=mine,
        extra_body={"prompt": {"name": "qa.cases", "variables": {"topic": "x"}}},
    )
    assert fake.requests_for("qwen-turbo")[-1]["response_format"] == mine


async def test_streaming_records_the_prompt(prompt_server: Server, fake: FakeUpstream) -> None:
    fake.script("qwen-turbo", Reply(content="a b c", chunks=3, prompt_tokens=4, completion_tokens=3))
    with client(prompt_server).chat.completions.with_streaming_response.create(
        model="auto",
        messages=[],
        stream=True,
        extra_body={"prompt": {"name": "qa.ideas", "variables": {"topic": "x"}}},
    ) as response:
        assert response.headers["x-aitp-prompt"] == "qa.ideas@1"
        rid = response.headers["x-request-id"]
        text = "".join(ch.choices[0].delta.content or "" for ch in response.parse() if ch.choices)
    assert text == "a b c"
    [row] = await prompt_server.wait_rows(USAGE_BY_ID, rid=rid)
    assert row["stream"] and (row["prompt_name"], row["prompt_version"]) == ("qa.ideas", 1)


async def test_canary_takes_its_share_of_production_calls(prompt_server: Server, fake: FakeUpstream) -> None:
    name = unique()
    published(prompt_server, spec(name, "stable {{ topic }}"))
    published(prompt_server, spec(name, "candidate {{ topic }}"))
    weight, calls = 0.25, 400
    moved = prompt_server.api("PUT", f"/api/prompts/{name}/labels/canary", json={"version": 2, "weight": weight})
    assert moved.status_code == 200, moved.text
    fake.set_default("qwen-turbo", Reply(content="ok", prompt_tokens=3, completion_tokens=1))
    semaphore = asyncio.Semaphore(20)

    async def one(c: openai.AsyncOpenAI, prompt: dict) -> str:
        async with semaphore:
            raw = await c.chat.completions.with_raw_response.create(
                model="turbo", messages=[], extra_body={"prompt": {**prompt, "variables": {"topic": "x"}}}
            )
            return raw.headers["x-aitp-prompt"]

    async with aclient(prompt_server) as c:
        default = Counter(await asyncio.gather(*[one(c, {"name": name}) for _ in range(calls)]))
        pinned = Counter(await asyncio.gather(*[one(c, {"name": name, "version": 1}) for _ in range(40)]))
        canary = Counter(await asyncio.gather(*[one(c, {"name": name, "label": "canary"}) for _ in range(40)]))
    # Binomial(400, 0.25): mean 100, standard deviation 8.66; four deviations either side.
    share = default[f"{name}@2"]
    assert default[f"{name}@1"] + share == calls
    sigma = (calls * weight * (1 - weight)) ** 0.5
    assert abs(share - calls * weight) <= 4 * sigma, default
    assert pinned == {f"{name}@1": 40}, "a named version never goes to the canary"
    assert canary == {f"{name}@2": 40}
    rows = await prompt_server.wait_rows(
        "SELECT prompt_version FROM usage_records WHERE prompt_name = :n", count=calls + 80, n=name
    )
    recorded = Counter(r["prompt_version"] for r in rows)
    assert recorded == {1: default[f"{name}@1"] + 40, 2: share + 40}
    prompt_server.api("PUT", f"/api/prompts/{name}/labels/canary", json={"version": 2, "weight": 0})
    async with aclient(prompt_server) as c:
        off = Counter(await asyncio.gather(*[one(c, {"name": name}) for _ in range(40)]))
    assert off == {f"{name}@1": 40}, "weight 0 stops the canary"


async def test_stats_compare_versions(prompt_server: Server, fake: FakeUpstream) -> None:
    name = unique()
    published(prompt_server, spec(name, "one {{ topic }}"))
    published(prompt_server, spec(name, "two {{ topic }}"))
    published(prompt_server, spec(name, "three {{ topic }}", response_schema=CASES_SCHEMA))
    c = client(prompt_server)

    def call(version: int, model: str = "turbo", key: str | None = None) -> None:
        prompt = {"name": name, "version": version, "variables": {"topic": "x"}}
        (client(prompt_server, key) if key else c).chat.completions.create(
            model=model, messages=[], extra_body={"prompt": prompt}
        )

    fake.set_default("qwen-turbo", Reply(content="ok", prompt_tokens=10, completion_tokens=5))
    for _ in range(3):
        call(1)
    call(2)
    fake.set_default("qwen-turbo", Reply(status=500, error_message="boom"))
    with pytest.raises(openai.APIStatusError):
        call(2)
    fake.set_default("qwen-turbo", Reply(content='{"nope": 1}', prompt_tokens=10, completion_tokens=5))
    fake.script("qwen-plus", Reply(content='{"cases": []}', prompt_tokens=10, completion_tokens=5))
    call(3, model="auto")
    project = "st-" + secrets.token_hex(3)
    member = prompt_server.new_key(project)
    fake.set_default("qwen-turbo", Reply(content="ok", prompt_tokens=10, completion_tokens=5))
    call(1, key=member)
    await prompt_server.wait_rows("SELECT id FROM usage_records WHERE prompt_name = :n", count=8, n=name)
    stats = prompt_server.api("GET", f"/api/prompts/{name}/stats").json()
    by = {v["version"]: v for v in stats["versions"]}
    turbo_cost = 10 * 5e-8 + 5 * 2e-7
    assert by[1]["requests"] == 4 and by[1]["labels"] == ["production"]
    assert (by[1]["prompt_tokens"], by[1]["completion_tokens"], by[1]["total_tokens"]) == (40, 20, 60)
    assert by[1]["cost_usd"] == pytest.approx(4 * turbo_cost)
    assert by[1]["cost_per_request_usd"] == pytest.approx(turbo_cost)
    assert by[1]["error_rate"] == 0 and by[1]["schema_failure_rate"] == 0
    assert by[1]["p50_latency_ms"] > 0 and by[1]["p95_latency_ms"] >= by[1]["p50_latency_ms"]
    assert by[2]["requests"] == 2 and by[2]["errors"] == 1 and by[2]["error_rate"] == 0.5
    assert by[3]["requests"] == 1 and by[3]["upstream_calls"] == 2
    assert by[3]["schema_failures"] == 1 and by[3]["schema_failure_rate"] == 1.0
    assert all(v["acceptance_rate"] is None for v in stats["versions"])
    # a project's keys see their own project's calls only
    own = prompt_server.api("GET", f"/api/prompts/{name}/stats", key=member).json()
    assert own["project"] == project
    assert [(v["version"], v["requests"]) for v in own["versions"]] == [(1, 1), (2, 0), (3, 0)]
    assert own["versions"][1]["error_rate"] is None
    other = prompt_server.api("GET", f"/api/prompts/{name}/stats?project=default", key=member)
    assert other.status_code == 404 and other.json()["error"]["code"] == "project_not_found"
    window = prompt_server.api("GET", f"/api/prompts/{name}/stats?from=2001-01-01&to=2001-01-02").json()
    assert all(v["requests"] == 0 for v in window["versions"])


async def test_rollback_takes_effect_at_once_on_every_replica(
    prompt_server: Server, server_factory: ServerFactory, fake: FakeUpstream
) -> None:
    config = yaml.safe_load((prompt_server.data_dir.parent / "aitp.yaml").read_text())
    env = {k: v for k, v in prompt_server.env.items() if k.startswith("AITP_PROMPTS__")}
    replica = await asyncio.to_thread(
        server_factory,
        config,
        prompt_server.database_url,
        extra_env={**env, "AITP_ADMIN_KEY": prompt_server.admin_key},
    )
    name = unique()
    published(prompt_server, spec(name, "old {{ topic }}"))
    published(prompt_server, spec(name, "new {{ topic }}"))
    assert prompt_server.api("PUT", f"/api/prompts/{name}/labels/production", json={"version": 2}).status_code == 200

    def served(server: Server) -> str:
        raw = client(server).chat.completions.with_raw_response.create(
            model="turbo", messages=[], extra_body={"prompt": {"name": name, "variables": {"topic": "x"}}}
        )
        return str(raw.headers["x-aitp-prompt"])

    assert [served(s) for s in (prompt_server, replica)] == [f"{name}@2"] * 2
    back = replica.api("POST", f"/api/prompts/{name}/rollback")
    assert back.status_code == 200 and back.json()["to_version"] == 1
    assert [served(s) for s in (prompt_server, replica)] == [f"{name}@1"] * 2
    replica.stop()
