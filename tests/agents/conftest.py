"""Task engine fixtures: embedded servers (SQLite and PostgreSQL) with short leases, and task helpers."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from typing import Any

import pytest

from tests.conftest import PostgresDatabases, Server, ServerFactory

# Short leases and back-offs keep the suite fast; the logic is the same at production values.
RECHECK_S = 0.5  # open streams look their key up again this often
TASKS: dict[str, Any] = {
    "lease_s": 3,
    "heartbeat_s": 0.5,
    "reaper_interval_s": 0.5,
    "retry_min_backoff_s": 0.2,
    "retry_max_backoff_s": 1,
    "shutdown_grace_s": 1,
    "sse_keepalive_s": 1,
    "stream_key_recheck_s": RECHECK_S,
    "metrics_refresh_s": 1,
    "embedded_threads": 3,
}


def task_config(**tasks: Any) -> dict[str, Any]:
    return {"tasks": {**TASKS, **tasks}}


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
async def embedded(
    request: pytest.FixtureRequest, server_factory: ServerFactory, pg_databases: PostgresDatabases
) -> Server:
    """``aitp serve`` without Redis: tasks run on its own worker threads."""
    url = await pg_databases.create() if request.param == "postgres" else None
    return await asyncio.to_thread(server_factory, task_config(), url, keep=True)


def project_key(server: Server, role: str = "member") -> str:
    """A key of a fresh project, so that counts and lists see only this test's tasks."""
    return server.new_key(f"t-{secrets.token_hex(4)}", role=role)


def submit(server: Server, key: str, expect: int = 201, **body: Any) -> dict[str, Any]:
    body.setdefault("kind", "system.sleep")
    response = server.api("POST", "/api/tasks", key=key, json=body)
    assert response.status_code == expect, response.text
    return dict(response.json())


async def wait_task(server: Server, key: str, task_id: str, *statuses: str, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        task = dict(server.api("GET", f"/api/tasks/{task_id}", key=key).json())
        if task["status"] in statuses:
            return task
        if time.monotonic() > deadline:
            raise AssertionError(f"task {task_id} is {task['status']}, not {statuses}: {task}")
        await asyncio.sleep(0.1)


async def events(server: Server, task_id: str, type_: str | None = None) -> list[dict[str, Any]]:
    """The task's event log, read from the database."""
    rows = await server.rows("SELECT id, type, data FROM task_events WHERE task_id = :t ORDER BY id", t=task_id)
    out = [{**r, "data": json.loads(r["data"]) if isinstance(r["data"], str) else r["data"]} for r in rows]
    return [e for e in out if type_ is None or e["type"] == type_]
