"""Unexpected failures: a complete 500 that keeps the connection, one log record, no bound values in logs.

The server is ``aitp serve`` as shipped plus test-only routes that fail on
purpose (``tests/core/serve_with_faults.py``), on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.conftest import PostgresDatabases, Server, ServerFactory, gateway_config
from tests.fakes.llm_upstream import FakeUpstream

from .serve_with_faults import BOOM


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
async def faulty(
    request: pytest.FixtureRequest, fake: FakeUpstream, server_factory: ServerFactory, pg_databases: PostgresDatabases
) -> Server:
    url = await pg_databases.create() if request.param == "postgres" else None
    return await asyncio.to_thread(server_factory, gateway_config(fake), url, module="tests.core.serve_with_faults")


def wait_for_log(server: Server, text: str, timeout: float = 5.0) -> str:
    deadline = time.monotonic() + timeout
    while text not in (log := server.log()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return log


def test_a_500_keeps_the_connection_alive(faulty: Server) -> None:
    with httpx.Client(base_url=faulty.base_url, timeout=10) as client:
        before = client.get("/test/peer").json()["port"]
        failed = client.get("/test/boom")
        assert failed.status_code == 500
        assert failed.json()["error"]["code"] == "internal_error"
        assert BOOM not in failed.text, "no internals in the answer"
        assert failed.headers["x-request-id"] in failed.json()["error"]["message"]
        assert failed.headers.get("connection", "keep-alive") != "close"
        after = client.get("/test/peer").json()["port"]
    assert after == before, "the same keep-alive connection answered after the 500"


def test_an_unhandled_error_is_logged_once(faulty: Server) -> None:
    rid = "once-" + str(time.monotonic_ns())
    response = httpx.get(f"{faulty.base_url}/test/boom", headers={"x-request-id": rid}, timeout=10)
    assert response.status_code == 500
    log = wait_for_log(faulty, rid)
    records = [line for line in log.splitlines() if BOOM in line and "/test/boom-stream" not in line]
    mine = [line for line in records if rid in line]
    assert len(mine) == 1, records
    assert "Exception in ASGI application" not in log


def test_an_error_mid_stream_is_logged_once(faulty: Server) -> None:
    with pytest.raises(httpx.HTTPError), httpx.stream("GET", f"{faulty.base_url}/test/boom-stream") as response:
        assert response.status_code == 200
        response.read()
    log = wait_for_log(faulty, BOOM + "-stream")
    assert sum(BOOM + "-stream" in line for line in log.splitlines()) == 1
    assert "Exception in ASGI application" not in log


def test_a_failed_insert_logs_the_statement_without_values(faulty: Server) -> None:
    key_hash = httpx.get(f"{faulty.base_url}/test/key-hash").json()["hash"]
    response = httpx.post(f"{faulty.base_url}/test/duplicate-key", timeout=10)
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "database_unavailable"
    assert key_hash not in response.text
    log = wait_for_log(faulty, "INSERT INTO api_keys")
    assert "INSERT INTO api_keys" in log, "the statement is logged"
    assert key_hash not in log, "bound values (here a key hash) are not"
    assert "sk-aitp-dup" not in log
