"""Open event streams end when their key is revoked or expires (SSE and WebSocket, SQLite and PostgreSQL).

The embedded server re-checks each stream's key every ``RECHECK_S`` seconds
(``tasks.stream_key_recheck_s``); a stream must keep working until then and
close with the reason within one interval after.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import websockets
from websockets.asyncio.client import ClientConnection, connect

from tests.conftest import Server

from ..conftest import RECHECK_S, submit, wait_task

SLACK_S = 1.5  # scheduling on a busy two-core machine


def _key(server: Server, **spec: Any) -> tuple[str, str]:
    """A member key of a fresh project: (key id, secret)."""
    project = f"s-{secrets.token_hex(4)}"
    assert server.api("POST", "/api/projects", json={"name": project}).status_code == 201
    created = server.api("POST", "/api/keys", json={"project": project, "name": "stream", **spec})
    assert created.status_code == 201, created.text
    return created.json()["id"], created.json()["key"]


def _revoke(server: Server, key_id: str) -> float:
    response = server.api("DELETE", f"/api/keys/{key_id}", json={"reason": "leaked in a build log"})
    assert response.status_code == 200 and response.json()["status"] == "revoked", response.text
    return time.monotonic()


async def _sse_blocks(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """Each SSE block as {"event", "data"} (comments come as {"comment"}), until the server ends the stream."""
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line.startswith(":"):
            yield {"comment": line[1:].strip()}
        elif line:
            name, _, value = line.partition(": ")
            fields[name] = value
        elif fields:
            yield {"event": fields.get("event"), "data": json.loads(fields.get("data", "null"))}
            fields = {}


async def _next(blocks: AsyncIterator[dict[str, Any]], timeout: float) -> dict[str, Any] | None:
    """The next SSE block, or None when the stream ended."""
    try:
        return await asyncio.wait_for(anext(blocks), timeout)
    except StopAsyncIteration:
        return None


async def _sse_until_closed(blocks: AsyncIterator[dict[str, Any]], timeout: float) -> list[dict[str, Any]]:
    """Every block up to the end of the stream; fails when the stream stays open longer than ``timeout``."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while (block := await _next(blocks, max(0.01, deadline - time.monotonic()))) is not None:
        seen.append(block)
    return seen


async def _ws_until_closed(ws: ClientConnection, timeout: float) -> list[dict[str, Any]]:
    """Every message up to the server's close frame; fails when the socket stays open longer than ``timeout``."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            seen.append(json.loads(await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.monotonic()))))
    except websockets.exceptions.ConnectionClosed:
        return seen


async def _ws_notices_until(ws: ClientConnection, final: str, timeout: float) -> list[str]:
    types: list[str] = []
    while final not in types:
        types.append(json.loads(await asyncio.wait_for(ws.recv(), timeout))["type"])
    return types


def _ws_url(server: Server, key: str) -> str:
    return server.base_url.replace("http://", "ws://") + f"/api/ws?token={key}"


async def test_websocket_closes_with_4401_within_the_interval_after_a_revocation(embedded: Server) -> None:
    key_id, key = _key(embedded)
    async with connect(_ws_url(embedded, key)) as ws:
        assert json.loads(await ws.recv())["type"] == "subscribed"
        # It keeps working across several re-checks while the key is valid.
        await asyncio.sleep(3 * RECHECK_S)
        task_id = submit(embedded, key, input={"seconds": 0.2})["id"]
        assert (await _ws_notices_until(ws, "task_succeeded", timeout=15))[0] == "task_started"
        assert (await wait_task(embedded, key, task_id, "succeeded"))["status"] == "succeeded"
        revoked = _revoke(embedded, key_id)
        messages = await _ws_until_closed(ws, RECHECK_S + SLACK_S)
        closed = time.monotonic() - revoked
    assert ws.close_code == 4401, (ws.close_code, ws.close_reason)
    assert "key_revoked" in (ws.close_reason or "") and "revoked" in (ws.close_reason or "")
    assert closed <= RECHECK_S + SLACK_S
    error = messages[-1]
    assert error["type"] == "error" and error["error"]["code"] == "key_revoked"
    assert "leaked in a build log" in error["error"]["message"]


async def test_sse_ends_with_a_key_revoked_error_within_the_interval(embedded: Server) -> None:
    key_id, key = _key(embedded)
    task_id = submit(embedded, key, input={"seconds": 60})["id"]
    await wait_task(embedded, key, task_id, "running")
    headers = {"authorization": f"Bearer {key}"}
    try:
        async with (
            httpx.AsyncClient(base_url=embedded.base_url, headers=headers, timeout=20) as http,
            http.stream("GET", f"/api/tasks/{task_id}/events") as response,
        ):
            assert response.status_code == 200
            blocks = _sse_blocks(response)
            before: list[dict[str, Any]] = []
            # Events, then keep-alives across several re-checks: the stream works while the key is valid.
            started = time.monotonic()
            while time.monotonic() - started < 3 * RECHECK_S:
                block = await _next(blocks, timeout=5)
                assert block is not None, "the stream ended while its key was valid"
                before.append(block)
            assert "task_started" in [b.get("event") for b in before]
            assert {"comment": "keep-alive"} in before
            revoked = _revoke(embedded, key_id)
            after = await _sse_until_closed(blocks, RECHECK_S + SLACK_S)
            closed = time.monotonic() - revoked
    finally:
        embedded.api("POST", f"/api/tasks/{task_id}/cancel")
    assert closed <= RECHECK_S + SLACK_S
    last = after[-1]
    assert last["event"] == "error", after
    assert last["data"]["error"]["code"] == "key_revoked"
    assert "leaked in a build log" in last["data"]["error"]["message"]


async def test_streams_of_an_expiring_key_close_when_it_expires(embedded: Server) -> None:
    before = time.monotonic()
    _, key = _key(embedded, expires_in_s=3)
    after = time.monotonic()  # the key expires 3 s after the server created it: between these two
    task_id = submit(embedded, key, input={"seconds": 60})["id"]
    headers = {"authorization": f"Bearer {key}"}
    try:
        async with (
            connect(_ws_url(embedded, key)) as ws,
            httpx.AsyncClient(base_url=embedded.base_url, headers=headers, timeout=20) as http,
            http.stream("GET", f"/api/tasks/{task_id}/events") as response,
        ):
            assert json.loads(await ws.recv())["type"] == "subscribed"
            assert response.status_code == 200
            blocks = _sse_blocks(response)
            sse, ws_messages = await asyncio.gather(
                _sse_until_closed(blocks, 3 + RECHECK_S + SLACK_S),
                _ws_until_closed(ws, 3 + RECHECK_S + SLACK_S),
            )
            closed = time.monotonic()
    finally:
        embedded.api("POST", f"/api/tasks/{task_id}/cancel")
    assert before + 3 - 0.5 <= closed <= after + 3 + RECHECK_S + SLACK_S
    assert "task_created" in [b.get("event") for b in sse]  # it streamed before the key expired
    assert sse[-1]["event"] == "error" and sse[-1]["data"]["error"]["code"] == "key_expired"
    assert ws.close_code == 4401 and "key_expired" in (ws.close_reason or "")
    assert ws_messages[-1]["error"]["code"] == "key_expired"
