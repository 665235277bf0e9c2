"""The worker roster: ``/api/monitor`` lists every live ``aitp worker`` until it stops, or dies and goes quiet.

Real Redis (a random database and key prefix, removed afterwards), PostgreSQL
and ``aitp worker`` processes; heartbeats every 0.5 s, so a silent worker's
entry expires 1.5 s after its last one.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import redis.asyncio

from tests.conftest import PostgresDatabases, Server, ServerFactory, Worker, drop_redis_keys, redis_env, start_worker

from ..conftest import task_config

HEARTBEAT_S = 0.5


@pytest.fixture(scope="module")
async def cluster(server_factory: ServerFactory, pg_databases: PostgresDatabases) -> AsyncIterator[Server]:
    url = await pg_databases.create()
    env = redis_env()
    config = task_config(worker_heartbeat_s=HEARTBEAT_S)
    server = await asyncio.to_thread(server_factory, config, url, extra_env=env)
    yield server
    await drop_redis_keys(env)


@pytest.fixture
def started(cluster: Server) -> Iterator[list[Worker]]:
    """Workers a test starts (append to the list); any still running are killed after it."""
    workers: list[Worker] = []
    yield workers
    for worker in workers:
        if worker.process.poll() is None:
            worker.kill()


def listed(server: Server) -> dict[str, Any]:
    response = server.api("GET", "/api/monitor")
    assert response.status_code == 200, response.text
    workers: dict[str, Any] = response.json()["system"]["workers"]
    return workers


async def wait_listed(server: Server, until: Callable[[dict[str, Any]], bool], timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        found = listed(server)
        if until(found):
            return found
        assert time.monotonic() < deadline, found
        await asyncio.sleep(0.1)


async def index_members(server: Server) -> set[bytes | str]:
    client = redis.asyncio.Redis.from_url(server.env["AITP_REDIS_URL"])
    try:
        members: set[bytes | str] = await client.smembers(f"{server.env['AITP_REDIS_PREFIX']}:workers")
        return members
    finally:
        await client.aclose()


async def test_a_worker_is_listed_while_it_runs_and_gone_once_stopped(cluster: Server, started: list[Worker]) -> None:
    before = listed(cluster)
    # The API process of distributed mode executes nothing itself.
    assert before["mode"] == "distributed" and before["threads_in_this_process"] == 0
    assert (before["count"], before["threads"], before["items"]) == (0, 0, [])

    worker = await asyncio.to_thread(start_worker, cluster, "--threads", "2", "--queues", "tasks")
    started.append(worker)
    # Listed as soon as it says it is ready: it registers before that.
    found = listed(cluster)
    assert (found["count"], found["threads"]) == (1, 2)
    [entry] = found["items"]
    assert entry["pid"] == worker.process.pid and entry["host"] == socket.gethostname()
    assert entry["queues"] == ["tasks"] and entry["threads"] == 2
    assert 0 <= entry["age_s"] < 60 and entry["last_beat_s"] < 60
    # Each worker reports its own browser pool (where browser runs happen in distributed mode); the monitor sums them.
    pool = entry["status"]["browser_pool"]
    assert (pool["in_use"], pool["queued"], pool["browsers"]) == (0, 0, 0) and pool["cap"] >= pool["max_browsers"] >= 1
    assert found["browser_pools"] == {
        "reporting": 1,
        **{name: pool[name] for name in ("in_use", "cap", "queued", "browsers", "max_browsers")},
    }

    # Its heartbeat keeps it listed well past the entry's time to live (three periods).
    await asyncio.sleep(HEARTBEAT_S * 5)
    later = listed(cluster)
    assert [e["id"] for e in later["items"]] == [entry["id"]]
    assert later["items"][0]["age_s"] > entry["age_s"]

    await asyncio.to_thread(worker.stop)
    assert worker.process.poll() == 0, worker.log()
    # A graceful stop removes the entry itself: no waiting for it to expire.
    assert listed(cluster)["count"] == 0
    assert await index_members(cluster) == set()


async def test_a_killed_worker_drops_out_when_its_entry_expires(cluster: Server, started: list[Worker]) -> None:
    worker = await asyncio.to_thread(start_worker, cluster, "--processes", "2", "--threads", "1")
    started.append(worker)
    both = await wait_listed(cluster, lambda w: w["count"] == 2, timeout=10)
    assert both["threads"] == 2 and len({e["pid"] for e in both["items"]}) == 2
    assert worker.process.pid not in {e["pid"] for e in both["items"]}  # the supervisor runs no tasks itself

    killed_at = time.monotonic()
    await asyncio.to_thread(worker.kill)  # SIGKILL: nothing gets to remove the entries
    await wait_listed(cluster, lambda w: w["count"] == 0, timeout=HEARTBEAT_S * 3 + 5)
    assert time.monotonic() - killed_at >= HEARTBEAT_S  # gone by expiry, not by a goodbye
    # The reader removed the expired ids from the index too.
    assert await index_members(cluster) == set()
