"""A Redis that restarts empty (no persistence) must not hand out budgets a second time.

The test runs a Redis of its own (``--save "" --appendonly no``) and a live
gateway on PostgreSQL in front of it, spends part of a day, a month and a total
budget, restarts that Redis with ``SHUTDOWN NOSAVE``, and keeps spending until
every budget refuses. The usage rows in the database are the truth: no budget
may have spent more than its limit, and the counters the ledger shows must
equal the sums of the rows.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.conftest import PostgresDatabases, Server, ServerFactory, gateway_config
from tests.fakes.llm_upstream import FakeUpstream, Reply

LIMIT_TOKENS = 2000
LIMIT_USD = 1.0  # block as well, far above what 2,000 tokens of qwen-turbo cost
PER_CALL = 100  # 10 prompt + 90 completion tokens, as the fake answers


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@dataclass
class RedisProcess:
    """A redis-server of this test alone, without persistence; stopped and killed by its pid."""

    workdir: Path
    port: int = field(default_factory=_free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        log = (self.workdir / "redis.log").open("ab")
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        client = redis.Redis(port=self.port, socket_timeout=1)
        try:
            while True:
                try:
                    if client.ping():
                        return
                except redis.ConnectionError as exc:
                    if self.process.poll() is not None or time.monotonic() > deadline:
                        output = (self.workdir / "redis.log").read_text()
                        raise RuntimeError(f"redis-server did not start: {output}") from exc
                    time.sleep(0.05)
        finally:
            client.close()

    def restart_empty(self) -> None:
        """``SHUTDOWN NOSAVE``, then the same port again: every key is gone."""
        assert self.process is not None
        client = redis.Redis(port=self.port, socket_timeout=2)
        try:
            client.shutdown(nosave=True)
        except redis.ConnectionError:
            pass  # the server closes the connection as it goes
        finally:
            client.close()
        self.process.wait(timeout=10)
        self.start()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def dbsize(self) -> int:
        client = redis.Redis(port=self.port, socket_timeout=2)
        try:
            return int(client.dbsize())
        finally:
            client.close()

    def counted(self, pattern: str) -> list[float]:
        """The ``used`` field of every counter hash whose key matches ``pattern``."""
        client = redis.Redis(port=self.port, socket_timeout=2)
        try:
            return [float(client.hget(key, "used") or 0) for key in client.scan_iter(match=pattern)]
        finally:
            client.close()


@pytest.fixture(scope="module")
async def restartable(
    fake: FakeUpstream,
    server_factory: ServerFactory,
    pg_databases: PostgresDatabases,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[Server, RedisProcess]]:
    own = RedisProcess(tmp_path_factory.mktemp("redis"))
    own.start()
    url = await pg_databases.create()
    env = {"AITP_REDIS_URL": own.url, "AITP_REDIS_PREFIX": "aitp-restart"}
    try:
        server = await asyncio.to_thread(server_factory, gateway_config(fake), url, extra_env=env)
        yield server, own
        server.stop()
    finally:
        own.kill()


@dataclass
class Case:
    """One budget of one period, in a project of its own so the cases do not share spending."""

    period: str
    project: str
    key: str
    budget: dict[str, Any]
    user: str | None
    scope_sql: str  # the usage rows this budget counts
    params: dict[str, str]


def _case(server: Server, period: str, scope: str) -> Case:
    project = f"rs-{period}-{secrets.token_hex(3)}"
    key = server.new_key(project)
    key_id = server.api("GET", f"/api/keys?project={project}").json()["items"][0]["id"]
    user = "alice" if scope == "user" else None
    scope_id = {"project": None, "key": key_id, "user": user}[scope]
    spec = {
        "project": project,
        "scope": scope,
        "period": period,
        "limit_tokens": LIMIT_TOKENS,
        "limit_usd": LIMIT_USD,
        "action": "block",
    }
    if scope_id is not None:
        spec["scope_id"] = scope_id
    response = server.api("PUT", "/api/budgets", json=spec)
    assert response.status_code == 201, response.text
    scope_sql = {"project": "", "key": " AND key_id = :k", "user": ' AND "user" = :u'}[scope]
    params = {"p": project, **({"k": key_id} if scope == "key" else {}), **({"u": user} if user else {})}
    return Case(period, project, key, response.json(), user, scope_sql, params)


async def _call(http: httpx.AsyncClient, server: Server, case: Case) -> int:
    body: dict[str, Any] = {"model": "turbo", "messages": [{"role": "user", "content": "x"}], "max_tokens": 90}
    if case.user:
        body["user"] = case.user
    response = await http.post(
        f"{server.v1}/chat/completions", json=body, headers={"authorization": f"Bearer {case.key}"}
    )
    assert response.status_code in (200, 429), response.text
    return response.status_code


async def _usage(server: Server, case: Case) -> tuple[int, int, float]:
    """Rows, tokens and USD the database recorded for this case's budget."""
    rows = await server.rows(
        "SELECT count(*) AS n, coalesce(sum(prompt_tokens + completion_tokens), 0) AS tokens,"
        " coalesce(sum(cost_usd), 0) AS usd FROM usage_records WHERE project_id = :p" + case.scope_sql,
        **case.params,
    )
    return int(rows[0]["n"]), int(rows[0]["tokens"]), float(rows[0]["usd"])


async def _flushed(server: Server, case: Case, count: int) -> None:
    deadline = time.monotonic() + 10
    while (await _usage(server, case))[0] < count:
        assert time.monotonic() < deadline, "usage rows were not written"
        await asyncio.sleep(0.05)


def _status(server: Server, case: Case) -> dict[str, Any]:
    response = server.api("GET", f"/api/budgets/{case.budget['id']}/status")
    assert response.status_code == 200, response.text
    return dict(response.json()["status"])


async def test_budgets_hold_across_a_redis_restart_without_persistence(
    restartable: tuple[Server, RedisProcess], fake: FakeUpstream
) -> None:
    server, own = restartable
    fake.set_default("qwen-turbo", Reply(content="ok", prompt_tokens=10, completion_tokens=90))
    cases = [_case(server, "day", "project"), _case(server, "month", "key"), _case(server, "total", "user")]
    async with httpx.AsyncClient(timeout=30) as http:
        for case in cases:
            for _ in range(12):
                assert await _call(http, server, case) == 200
            await _flushed(server, case, 12)
            assert _status(server, case)["tokens"]["used"] == 12 * PER_CALL

        own.restart_empty()
        assert own.dbsize() == 0

        for case in cases:
            served = 0
            for _ in range(LIMIT_TOKENS // PER_CALL + 5):
                if await _call(http, server, case) == 429:
                    break
                served += 1
            else:
                pytest.fail(f"the {case.period} budget never refused after the restart")
            assert served <= (LIMIT_TOKENS - 12 * PER_CALL) // PER_CALL, f"{case.period}: {served} served after"
            await _flushed(server, case, 12 + served)

    for case in cases:
        _, tokens, usd = await _usage(server, case)
        state = _status(server, case)
        assert tokens <= LIMIT_TOKENS, f"the {case.period} budget spent {tokens} of {LIMIT_TOKENS} tokens"
        assert state["tokens"]["used"] == tokens, f"{case.period}: the ledger's counter differs from the rows"
        assert own.counted(f"aitp-restart:lc:*:budget:{case.budget['id']}:tokens") == [tokens]
        assert state["usd"]["used"] == pytest.approx(usd, rel=1e-9, abs=1e-12)
        assert state["tokens"]["reserved"] == 0 and state["usd"]["reserved"] < 1e-12
        assert state["current_action"] == "blocking"
