"""Embedded mode survives a crash: unfinished tasks run again after a restart on the same SQLite file.
A task that outlives its kind's time limit fails with a clear error; finished tasks are purged in time."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import Server, ServerFactory, start_server

from ..conftest import events, project_key, submit, task_config, wait_task


async def test_embedded_restart_after_sigkill_finishes_every_task_once(
    server_factory: ServerFactory, tmp_path_factory: pytest.TempPathFactory
) -> None:
    config = task_config(lease_s=2)
    first = await asyncio.to_thread(server_factory, config)
    key = project_key(first)
    ids = [submit(first, key, input={"seconds": 1.5})["id"] for _ in range(5)]  # 3 threads: 2 stay pending
    await wait_task(first, key, ids[0], "running")
    first.process.kill()  # SIGKILL: no shutdown hooks, leases left behind
    first.process.wait()
    tmp = tmp_path_factory.mktemp("restart")
    second: Server = await asyncio.to_thread(start_server, tmp, config, first.database_url, launcher=first.launcher)
    try:
        for task_id in ids:
            await wait_task(second, key, task_id, "succeeded", timeout=30)
            assert len(await events(second, task_id, "task_succeeded")) == 1
        crashed = await events(second, ids[0], "execution_started")
        assert len(crashed) == 2, crashed  # started before the crash, and again after it
        assert (await wait_task(second, key, ids[0], "succeeded"))["attempts"] == 2
    finally:
        second.stop()


@pytest.fixture(scope="module")
async def short_lived(server_factory: ServerFactory) -> Server:
    """A one-second time limit for system.sleep, and finished tasks kept for two seconds only."""
    config = task_config(time_limits={"system.sleep": 1}, retention_days=2 / 86400, retention_interval_s=0.5)
    return await asyncio.to_thread(server_factory, config)


async def test_a_task_over_its_time_limit_fails(short_lived: Server) -> None:
    server = short_lived
    key = project_key(server)
    task_id = submit(server, key, input={"seconds": 20})["id"]
    failed = await wait_task(server, key, task_id, "failed", timeout=10)
    assert failed["error"]["type"] == "time_limit"
    assert "time limit of 1 s" in failed["error"]["message"]
    assert "tasks.time_limits" in failed["error"]["hint"]
    assert failed["attempts"] == 1
    # The worker thread is free again.
    assert (await wait_task(server, key, submit(server, key)["id"], "succeeded"))["status"] == "succeeded"


async def test_finished_tasks_and_their_events_are_purged_after_retention(short_lived: Server) -> None:
    key = project_key(short_lived)
    task_id = submit(short_lived, key)["id"]
    await wait_task(short_lived, key, task_id, "succeeded")
    deadline = asyncio.get_running_loop().time() + 10
    while short_lived.api("GET", f"/api/tasks/{task_id}", key=key).status_code != 404:
        assert asyncio.get_running_loop().time() < deadline, "the finished task was never purged"
        await asyncio.sleep(0.2)
    assert await events(short_lived, task_id) == []
