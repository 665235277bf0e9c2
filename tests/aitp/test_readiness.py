"""``/readyz`` of a live ``aitp serve``: 200 with every dependency up, 503 naming the one that went away.

The distributed server reaches Redis and a real Chroma server (``chroma run``)
through TCP proxies the test cuts and restores, so a dependency disappears
from under a running server the way a failed machine does.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.agents.kb.test_chroma_server import chroma_url  # noqa: F401  (the Chroma server fixture)
from tests.conftest import Server, ServerFactory, gateway_config
from tests.fakes.llm_upstream import FakeUpstream
from tests.fakes.tcp_proxy import TcpProxy

CHECKS = {"database", "redis", "broker", "chroma", "llm_engine"}


@pytest.fixture(scope="module")
def redis_proxy() -> Iterator[TcpProxy]:
    proxy = TcpProxy(6379).start()
    yield proxy
    proxy.stop()


@pytest.fixture(scope="module")
def chroma_proxy(chroma_url: str) -> Iterator[TcpProxy]:  # noqa: F811
    proxy = TcpProxy(int(urlsplit(chroma_url).port or 0)).start()
    yield proxy
    proxy.stop()


@pytest.fixture(scope="module")
async def distributed(
    fake: FakeUpstream, server_factory: ServerFactory, redis_proxy: TcpProxy, chroma_proxy: TcpProxy
) -> Server:
    env = {
        "AITP_REDIS_URL": f"redis://127.0.0.1:{redis_proxy.port}/0",
        "AITP_REDIS_PREFIX": "aitp-ready-" + secrets.token_hex(4),
        "AITP_CHROMA_URL": f"http://127.0.0.1:{chroma_proxy.port}",
    }
    return await asyncio.to_thread(server_factory, gateway_config(fake), None, extra_env=env)


def ready(server: Server) -> httpx.Response:
    return httpx.get(f"{server.base_url}/readyz", timeout=10)


def wait_status(server: Server, status: int, timeout: float = 10.0) -> dict[str, Any]:
    """The /readyz body once it answers ``status`` (a pool may first reuse a socket the proxy just dropped)."""
    deadline = time.monotonic() + timeout
    while True:
        response = ready(server)
        if response.status_code == status or time.monotonic() > deadline:
            assert response.status_code == status, response.text
            body: dict[str, Any] = response.json()
            return body
        time.sleep(0.1)


def test_all_up_is_ready_with_latencies(distributed: Server) -> None:
    body = wait_status(distributed, 200)
    assert body["status"] == "ok" and "failed" not in body
    assert body["checks"] == dict.fromkeys(CHECKS, "ok")
    assert set(body["latency_ms"]) == CHECKS
    assert all(0 <= ms < 2000 for ms in body["latency_ms"].values())
    assert body["details"]["broker"] == "redis broker"
    assert body["details"]["chroma"].startswith("server http://127.0.0.1:")


def test_redis_away_names_redis_and_the_broker(distributed: Server, redis_proxy: TcpProxy) -> None:
    redis_proxy.cut()
    try:
        body = wait_status(distributed, 503)
        assert body["status"] == "not_ready"
        assert sorted(body["failed"]) == ["broker", "redis"]  # the broker's queue is on the same Redis
        assert body["checks"]["redis"].startswith("error: ") and "Connection" in body["checks"]["redis"]
        assert body["checks"]["database"] == "ok" and body["checks"]["chroma"] == "ok"
        assert "redis" in body["message"]
    finally:
        redis_proxy.restore()
    assert wait_status(distributed, 200)["checks"]["redis"] == "ok"


def test_chroma_away_names_chroma(distributed: Server, chroma_proxy: TcpProxy) -> None:
    chroma_proxy.cut()
    try:
        body = wait_status(distributed, 503)
        assert body["failed"] == ["chroma"]
        assert body["checks"]["chroma"].startswith("error: ConnectError")
        assert body["message"].startswith("not ready: chroma: ")
    finally:
        chroma_proxy.restore()
    assert wait_status(distributed, 200)["checks"]["chroma"] == "ok"


async def test_embedded_checks_worker_threads_and_the_chroma_directory(
    fake: FakeUpstream, server_factory: ServerFactory
) -> None:
    server = await asyncio.to_thread(server_factory, gateway_config(fake, tasks={"embedded_threads": 3}))
    body = wait_status(server, 200)
    assert set(body["checks"]) == CHECKS - {"redis"}  # no Redis in embedded mode
    assert body["details"]["broker"] == "stub broker, 3 worker threads"
    assert body["details"]["chroma"].startswith(f"embedded {server.data_dir / 'chroma'}")
