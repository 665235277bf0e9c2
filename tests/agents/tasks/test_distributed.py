"""Distributed mode: PostgreSQL, Redis and real ``aitp worker`` processes.

Workers are killed with SIGKILL mid-task (every task still finishes exactly
once), stopped with SIGTERM (the running task is released, not failed), and
the API pushes notifications over a WebSocket and SSE via Redis pub/sub.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import websockets
from websockets.asyncio.client import connect

from tests.conftest import PostgresDatabases, Server, ServerFactory, Worker, drop_redis_keys, redis_env, start_worker

from ..conftest import events, project_key, submit, task_config, wait_task


@pytest.fixture(scope="module")
async def cluster(server_factory: ServerFactory, pg_databases: PostgresDatabases) -> AsyncIterator[Server]:
    url = await pg_databases.create()
    env = redis_env()
    server = await asyncio.to_thread(server_factory, task_config(pending_requeue_s=3), url, extra_env=env)
    yield server
    await drop_redis_keys(env)


@pytest.fixture
async def workers(cluster: Server) -> AsyncIterator[list[Worker]]:
    """Workers a test starts (append to the list); all are stopped after it."""
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.kill()


async def test_kill_9_mid_task_every_task_still_finishes_exactly_once(cluster: Server, workers: list[Worker]) -> None:
    key = project_key(cluster)
    workers.append(await asyncio.to_thread(start_worker, cluster, "--processes", "2", "--threads", "4"))
    ids = [submit(cluster, key, input={"seconds": 1.0})["id"] for _ in range(24)]
    for task_id in ids[:4]:
        await wait_task(cluster, key, task_id, "running", "succeeded")
    workers[0].kill()
    workers.append(await asyncio.to_thread(start_worker, cluster, "--processes", "1", "--threads", "8"))
    for task_id in ids:
        await wait_task(cluster, key, task_id, "succeeded", timeout=60)
    completed = await cluster.rows(
        "SELECT task_id, count(*) AS n FROM task_events WHERE type = 'task_succeeded' AND project_id = :p "
        "GROUP BY task_id",
        p=cluster.api("GET", f"/api/tasks/{ids[0]}", key=key).json()["project"],
    )
    assert sorted(r["task_id"] for r in completed) == sorted(ids)
    assert all(r["n"] == 1 for r in completed), completed
    started = [len(await events(cluster, task_id, "execution_started")) for task_id in ids]
    assert sum(started) > len(ids), "the SIGKILL should have interrupted at least one execution"
    assert max(started) <= 3


async def test_sigterm_releases_the_running_task_to_another_worker(cluster: Server, workers: list[Worker]) -> None:
    key = project_key(cluster)
    first = await asyncio.to_thread(start_worker, cluster, "--threads", "2")
    workers.append(first)
    # Long enough to still be running when the second worker is up (it loads litellm while starting).
    task_id = submit(cluster, key, input={"seconds": 8})["id"]
    await wait_task(cluster, key, task_id, "running")
    workers.append(await asyncio.to_thread(start_worker, cluster, "--threads", "2"))
    await asyncio.to_thread(first.stop)
    assert first.process.returncode == 0, first.log()
    done = await wait_task(cluster, key, task_id, "succeeded", timeout=30)
    assert done["attempts"] == 1  # the released attempt is not counted
    assert len(await events(cluster, task_id, "task_released")) == 1
    assert len(await events(cluster, task_id, "execution_started")) == 2


async def _receive(ws: Any, timeout: float) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    try:
        while True:
            out.append(json.loads(await asyncio.wait_for(ws.recv(), timeout)))
            if out[-1]["type"] == "task_succeeded":
                return out
    except TimeoutError:
        return out


async def test_websocket_pushes_the_callers_project_only(cluster: Server, workers: list[Worker]) -> None:
    workers.append(await asyncio.to_thread(start_worker, cluster, "--threads", "2"))
    mine, theirs = project_key(cluster), project_key(cluster)
    ws_url = cluster.base_url.replace("http://", "ws://") + "/api/ws"
    async with (
        connect(f"{ws_url}?token={mine}") as ws_mine,
        connect(ws_url, additional_headers={"authorization": f"Bearer {theirs}"}) as ws_theirs,
    ):
        assert json.loads(await ws_mine.recv())["type"] == "subscribed"
        assert json.loads(await ws_theirs.recv())["type"] == "subscribed"
        task_id = submit(cluster, mine, input={"seconds": 0.3})["id"]
        notices = await _receive(ws_mine, timeout=15)
        assert {n["task_id"] for n in notices} == {task_id}
        types = [n["type"] for n in notices]
        assert types[0] == "task_started" and "task_progress" in types and types[-1] == "task_succeeded"
        assert await _receive(ws_theirs, timeout=0.5) == []
    with pytest.raises(websockets.exceptions.InvalidStatus):
        async with connect(f"{ws_url}?token=sk-aitp-wrong"):
            pass


async def test_sse_follows_a_task_across_processes(cluster: Server, workers: list[Worker]) -> None:
    workers.append(await asyncio.to_thread(start_worker, cluster, "--threads", "2"))
    key = project_key(cluster)
    task_id = submit(cluster, key, input={"seconds": 1})["id"]
    headers = {"authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=cluster.base_url, headers=headers, timeout=20) as http:
        response = await http.get(f"/api/tasks/{task_id}/events")
    kinds = [line.split(": ", 1)[1] for line in response.text.splitlines() if line.startswith("event: ")]
    assert kinds[0] == "task_created" and kinds[-1] == "task_succeeded" and "execution_started" in kinds
