"""A PostgreSQL hiccup never loses an upstream call's accounting or leaks a reservation.

Concurrent chat loops run while every server connection to the database is
terminated again and again (``pg_terminate_backend``). Afterwards every call
the fake upstream answered has its usage row, and nothing stays reserved.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time

import asyncpg
import httpx
import pytest

from tests.conftest import PG_ADMIN_DSN, PostgresDatabases, Server, ServerFactory, gateway_config
from tests.fakes.llm_upstream import FakeUpstream, Reply

LOOPS = 8
STORM_S = 6.0


async def _terminate_all(dbname: str, stop: asyncio.Event) -> int:
    killed = 0
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        while not stop.is_set():
            rows = await conn.fetch(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                dbname,
            )
            killed += len(rows)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=0.4)
    finally:
        await conn.close()
    return killed


async def _chat_loop(server: Server, key: str, until: float, statuses: list[int]) -> None:
    async with httpx.AsyncClient(base_url=server.v1, headers={"authorization": f"Bearer {key}"}, timeout=30) as http:
        while time.monotonic() < until:
            response = await http.post(
                "/chat/completions",
                json={"model": "turbo", "max_tokens": 20, "messages": [{"role": "user", "content": "hello"}]},
            )
            statuses.append(response.status_code)
            assert "Traceback" not in response.text
            if response.status_code != 200:
                await asyncio.sleep(0.05)


@pytest.mark.timeout(180)
@pytest.mark.serial  # terminates PostgreSQL connections under a burst: run alone
async def test_terminated_connections_lose_no_accounting_and_leak_no_reservation(
    fake: FakeUpstream, server_factory: ServerFactory, pg_databases: PostgresDatabases
) -> None:
    url = await pg_databases.create()
    dbname = url.rsplit("/", 1)[1]
    server = await asyncio.to_thread(server_factory, gateway_config(fake), url)
    project = "h-" + secrets.token_hex(4)
    key = await asyncio.to_thread(server.new_key, project)
    created = await asyncio.to_thread(
        server.api,
        "PUT",
        "/api/budgets",
        json={"project": project, "limit_tokens": 10_000_000, "period": "day", "action": "block"},
    )
    assert created.status_code in (200, 201), created.text
    budget_id = created.json()["id"]
    fake.set_default("qwen-turbo", Reply(content="ok", prompt_tokens=5, completion_tokens=7, delay_ms=20))

    stop = asyncio.Event()
    storm = asyncio.create_task(_terminate_all(dbname, stop))
    statuses: list[int] = []
    until = time.monotonic() + STORM_S
    await asyncio.gather(*(_chat_loop(server, key, until, statuses) for _ in range(LOOPS)))
    stop.set()
    killed = await storm
    assert killed > 0, "the hiccup never happened"
    assert statuses.count(200) > 20, statuses

    # Deferred settlements and kept usage rows land once the database answers again.
    upstream_calls = len([c for c in fake.calls if c[0].endswith("/chat/completions")])
    deadline = time.monotonic() + 30
    while True:
        rows = await server.rows(
            "SELECT count(*) AS n, coalesce(sum(prompt_tokens + completion_tokens), 0) AS tokens "
            "FROM usage_records WHERE project_id = :p AND prompt_tokens > 0",
            p=project,
        )
        state = (await asyncio.to_thread(server.api, "GET", f"/api/budgets/{budget_id}/status")).json()["status"]
        done = rows[0]["n"] == upstream_calls and state["tokens"]["reserved"] == 0
        if done or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert rows[0]["n"] == upstream_calls, f"{upstream_calls - rows[0]['n']} upstream calls have no usage row"
    assert state["tokens"]["reserved"] == 0, f"{state['tokens']['reserved']} tokens stay reserved"
    assert state["tokens"]["used"] == rows[0]["tokens"] == upstream_calls * 12
    # Every answer the client got was charged; refusals happened only before an upstream call.
    assert statuses.count(200) <= upstream_calls
    assert set(statuses) <= {200, 503}, sorted(set(statuses))
