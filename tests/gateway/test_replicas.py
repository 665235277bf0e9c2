"""Several gateway processes sharing PostgreSQL and Redis never overspend a budget."""

from __future__ import annotations

import asyncio
import random
import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis.asyncio

from tests.conftest import PostgresDatabases, Server, ServerFactory, gateway_config
from tests.fakes.llm_upstream import FakeUpstream, Reply

REPLICAS = 3


@pytest.fixture(scope="module")
async def replicas(
    fake: FakeUpstream, server_factory: ServerFactory, pg_databases: PostgresDatabases
) -> AsyncIterator[list[Server]]:
    url = await pg_databases.create()
    env = {
        "AITP_REDIS_URL": f"redis://127.0.0.1:6379/{random.randint(1, 15)}",
        "AITP_REDIS_PREFIX": "aitp-test-" + secrets.token_hex(4),
        "AITP_ADMIN_KEY": "sk-aitp-replica-admin-" + secrets.token_urlsafe(24),
    }
    config = gateway_config(fake)
    first = await asyncio.to_thread(server_factory, config, url, extra_env=env)
    rest = await asyncio.gather(
        *[asyncio.to_thread(server_factory, config, url, extra_env=env) for _ in range(REPLICAS - 1)]
    )
    yield [first, *rest]
    client = redis.asyncio.Redis.from_url(env["AITP_REDIS_URL"])
    async for key in client.scan_iter(match=env["AITP_REDIS_PREFIX"] + "*"):
        await client.delete(key)
    await client.aclose()


async def _request(http: httpx.AsyncClient, server: Server, key: str, stream: bool, max_tokens: int) -> int:
    body: dict[str, Any] = {
        "model": "turbo",
        "messages": [{"role": "user", "content": "generate"}],
        "max_tokens": max_tokens,
        "stream": stream,
    }
    headers = {"authorization": f"Bearer {key}"}
    if not stream:
        response = await http.post(f"{server.v1}/chat/completions", json=body, headers=headers)
        return response.status_code
    async with http.stream("POST", f"{server.v1}/chat/completions", json=body, headers=headers) as response:
        await response.aread()
        return response.status_code


async def test_concurrent_requests_across_replicas_never_overspend(replicas: list[Server], fake: FakeUpstream) -> None:
    head = replicas[0]
    project = "race-" + secrets.token_hex(4)
    key = head.new_key(project)
    limit_tokens, limit_usd = 6000, 0.0006
    b = head.api(
        "PUT",
        "/api/budgets",
        json={"project": project, "limit_tokens": limit_tokens, "limit_usd": limit_usd, "action": "block"},
    ).json()
    fake.set_default("qwen-turbo", Reply(content="ok " * 40, prompt_tokens=12, completion_tokens=60, delay_ms=20))
    rng = random.Random(7)
    limits = httpx.Limits(max_connections=300)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        statuses = await asyncio.gather(
            *[_request(http, replicas[i % REPLICAS], key, rng.random() < 0.5, rng.randint(10, 200)) for i in range(300)]
        )
    assert set(statuses) <= {200, 429}, statuses
    served = statuses.count(200)
    assert served > 0 and statuses.count(429) > 0
    state = head.api("GET", f"/api/budgets/{b['id']}/status").json()["status"]
    assert state["tokens"]["reserved"] == 0 and state["usd"]["reserved"] < 1e-12
    assert state["tokens"]["used"] <= limit_tokens
    assert state["usd"]["used"] <= limit_usd + 1e-12
    rows = await head.wait_rows(
        "SELECT prompt_tokens, completion_tokens, cost_usd FROM usage_records WHERE project_id = :p AND status = 'ok'",
        count=served,
        p=project,
    )
    assert len(rows) == served
    assert sum(r["prompt_tokens"] + r["completion_tokens"] for r in rows) == state["tokens"]["used"]


def test_rpm_holds_across_replicas(replicas: list[Server]) -> None:
    key = replicas[0].new_key("rpm-" + secrets.token_hex(4), rpm=5)
    codes = []
    for i in range(12):
        server = replicas[i % REPLICAS]
        response = httpx.post(
            f"{server.v1}/chat/completions",
            json={"model": "turbo", "messages": [{"role": "user", "content": "x"}]},
            headers={"authorization": f"Bearer {key}"},
            timeout=20,
        )
        codes.append(response.status_code)
    assert codes.count(200) == 5 and codes.count(429) == 7


@pytest.fixture(scope="module")
async def redis_down(fake: FakeUpstream, server_factory: ServerFactory) -> Server:
    env = {"AITP_REDIS_URL": "redis://127.0.0.1:1/0"}
    return await asyncio.to_thread(server_factory, gateway_config(fake), None, extra_env=env)


def test_unreachable_ledger_fails_closed(redis_down: Server) -> None:
    project = "down-" + secrets.token_hex(4)
    key = redis_down.new_key(project)
    redis_down.api("PUT", "/api/budgets", json={"project": project, "limit_tokens": 1000, "action": "block"})
    response = httpx.post(
        f"{redis_down.v1}/chat/completions",
        json={"model": "turbo", "messages": [{"role": "user", "content": "x"}]},
        headers={"authorization": f"Bearer {key}"},
        timeout=20,
    )
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "ledger_unavailable"
    ready = httpx.get(f"{redis_down.base_url}/readyz")
    assert ready.status_code == 503 and ready.json()["checks"]["redis"].startswith("error")
