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

from .test_budgets import in_one_minute

# 300 concurrent calls against three replicas: a burst that must not share the machine with other tests.
pytestmark = pytest.mark.serial

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
        # 300 concurrent calls: the production pool size, not the suite's small idle one.
        "AITP_DATABASE_POOL_SIZE": "5",
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


SYSTEM_PROMPT_TOKENS = 500  # billed by the provider on every call, invisible to the gateway's count
IN_FLIGHT = 20


async def _prompt_reservation(http: httpx.AsyncClient, head: Server, max_tokens: int) -> float:
    """What the gateway reserves for the race's prompt: read from a budget while one call is in flight."""
    project = "probe-" + secrets.token_hex(4)
    key = head.new_key(project)
    b = head.api("PUT", "/api/budgets", json={"project": project, "limit_tokens": 10**6, "action": "block"}).json()
    call = asyncio.create_task(_request(http, head, key, False, max_tokens))
    reserved = 0.0
    while not reserved and not call.done():
        response = await http.get(f"{head.base_url}/api/budgets/{b['id']}/status", headers=head.admin_headers)
        reserved = response.json()["status"]["tokens"]["reserved"]
        await asyncio.sleep(0.01)
    assert await call == 200 and reserved, "the probe call was never seen in flight"
    return reserved - max_tokens


async def test_usage_above_the_estimate_overshoots_by_at_most_the_in_flight_excess(
    replicas: list[Server], fake: FakeUpstream
) -> None:
    """The ledger records what the provider reports even above the reservation.

    Admission still needs ``used + reserved + estimate <= limit``, so the budget ends above its
    limit by at most the excess of the calls in flight when the last one was admitted: with at most
    ``IN_FLIGHT`` calls at a time and completions capped at the reserved ``max_tokens``, that is
    ``IN_FLIGHT * (reported prompt - reserved prompt)``.
    """
    head = replicas[0]
    fake.script("qwen-turbo", Reply(content="ok", system_prompt_tokens=SYSTEM_PROMPT_TOKENS, delay_ms=1000))
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=300)) as http:
        estimate = await _prompt_reservation(http, head, max_tokens=100)
        reported = 1 + SYSTEM_PROMPT_TOKENS  # the fake counts the one word of "generate", plus the hidden prompt
        assert estimate > 0 and estimate + 200 < reported, "every call below reports more than it reserved"

        project = "over-" + secrets.token_hex(4)
        key = head.new_key(project)
        limit_tokens, limit_usd = 6000, 1.0  # the USD limit is never reached: only its counter is checked
        b = head.api(
            "PUT",
            "/api/budgets",
            json={"project": project, "limit_tokens": limit_tokens, "limit_usd": limit_usd, "action": "block"},
        ).json()
        fake.set_default(
            "qwen-turbo",
            Reply(content="ok " * 40, completion_tokens=60, system_prompt_tokens=SYSTEM_PROMPT_TOKENS, delay_ms=20),
        )
        gate = asyncio.Semaphore(IN_FLIGHT)
        rng = random.Random(11)

        async def one(i: int, stream: bool, max_tokens: int) -> int:
            async with gate:
                return await _request(http, replicas[i % REPLICAS], key, stream, max_tokens)

        statuses = await asyncio.gather(*[one(i, rng.random() < 0.5, rng.randint(10, 200)) for i in range(300)])
    assert set(statuses) <= {200, 429}, statuses
    served = statuses.count(200)
    assert served > 0 and statuses.count(429) > 0
    rows = await head.wait_rows(
        "SELECT prompt_tokens, completion_tokens, cost_usd FROM usage_records WHERE project_id = :p AND status = 'ok'",
        count=served,
        p=project,
    )
    assert len(rows) == served
    assert {r["prompt_tokens"] for r in rows} == {reported}
    state = head.api("GET", f"/api/budgets/{b['id']}/status").json()["status"]
    assert state["tokens"]["reserved"] == 0 and state["usd"]["reserved"] < 1e-12
    assert state["tokens"]["used"] == sum(r["prompt_tokens"] + r["completion_tokens"] for r in rows)
    assert state["usd"]["used"] == pytest.approx(sum(r["cost_usd"] for r in rows), rel=1e-9, abs=1e-12)
    overshoot = state["tokens"]["used"] - limit_tokens
    assert overshoot <= IN_FLIGHT * (reported - estimate), (overshoot, served)


def test_rpm_holds_across_replicas(replicas: list[Server]) -> None:
    key = replicas[0].new_key("rpm-" + secrets.token_hex(4), rpm=5)
    codes = []
    in_one_minute()
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
