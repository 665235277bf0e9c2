"""Cancel, retries, review, time limits and SSE on an embedded server (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from tests.conftest import Server

from ..conftest import events, project_key, submit, wait_task


async def test_cancel_pending_never_starts_and_cancel_running_stops_at_a_step(embedded: Server) -> None:
    key = project_key(embedded)
    # Three embedded worker threads: three long tasks occupy them, the fourth waits.
    running = [submit(embedded, key, input={"seconds": 30})["id"] for _ in range(3)]
    for task_id in running:
        await wait_task(embedded, key, task_id, "running")
    waiting = submit(embedded, key, input={"seconds": 0})["id"]
    cancelled = embedded.api("POST", f"/api/tasks/{waiting}/cancel", key=key)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    for task_id in running:
        response = embedded.api("POST", f"/api/tasks/{task_id}/cancel", key=key)
        assert response.status_code == 200 and response.json()["cancel_requested"] is True
    for task_id in running:
        task = await wait_task(embedded, key, task_id, "cancelled", timeout=5)
        assert task["finished_at"] and task["result"] is None
    await asyncio.sleep(0.5)  # the freed threads would now pick the cancelled task up, if they could
    assert (await wait_task(embedded, key, waiting, "cancelled"))["attempts"] == 0
    assert await events(embedded, waiting, "execution_started") == []
    again = embedded.api("POST", f"/api/tasks/{waiting}/cancel", key=key)
    assert again.status_code == 200 and again.json()["status"] == "cancelled"


async def test_transient_errors_retry_with_backoff_then_succeed_or_fail(embedded: Server) -> None:
    key = project_key(embedded)
    retried = submit(embedded, key, input={"fail_times": 2})["id"]
    exhausted = submit(embedded, key, input={"fail_times": 5})["id"]
    done = await wait_task(embedded, key, retried, "succeeded")
    assert done["attempts"] == 3 and done["result"]["attempt"] == 3
    assert len(await events(embedded, retried, "execution_started")) == 3
    assert len(await events(embedded, retried, "task_retry")) == 2
    failed = await wait_task(embedded, key, exhausted, "failed")
    assert failed["attempts"] == 3
    assert failed["error"]["type"] == "transient_error"
    assert "attempt 3 of 3" in failed["error"]["message"] and "max_attempts" in failed["error"]["hint"]
    finished = embedded.api("POST", f"/api/tasks/{exhausted}/cancel", key=key)
    assert finished.status_code == 409


async def test_review_pauses_durably_and_resumes_with_the_decision(embedded: Server) -> None:
    key = project_key(embedded)
    task_id = submit(embedded, key, input={"seconds": 0, "review": True})["id"]
    paused = await wait_task(embedded, key, task_id, "reviewing")
    assert paused["need_review"] is True and "approve" in paused["interrupt_data"]["question"]
    bad = embedded.api("POST", f"/api/tasks/{task_id}/review", key=key, json={"action": "maybe"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "action"
    corrected = embedded.api("POST", f"/api/tasks/{task_id}/review", key=key, json={"action": "corrected"})
    assert corrected.status_code == 400 and "corrected_body" in corrected.json()["error"]["message"]
    decision = {"action": "approved", "feedback": "fine"}
    assert embedded.api("POST", f"/api/tasks/{task_id}/review", key=key, json=decision).status_code == 200
    done = await wait_task(embedded, key, task_id, "succeeded")
    assert done["result"]["review"]["action"] == "approved" and done["need_review"] is False
    late = embedded.api("POST", f"/api/tasks/{task_id}/review", key=key, json=decision)
    assert late.status_code == 409 and late.json()["error"]["code"] == "task_not_reviewing"
    types = [e["type"] for e in await events(embedded, task_id)]
    assert types.index("task_need_review") < types.index("task_reviewed") < types.index("task_succeeded")


def _parse_sse(text: str) -> list[dict[str, Any]]:
    out = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if line and not line.startswith(":"))
        if fields:
            out.append({"id": int(fields["id"]), "event": fields["event"], "data": json.loads(fields["data"])})
    return out


async def test_sse_streams_live_then_replays_after_last_event_id(embedded: Server) -> None:
    key = project_key(embedded)
    task_id = submit(embedded, key, input={"seconds": 1.5})["id"]
    headers = {"authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=embedded.base_url, headers=headers, timeout=20) as http:
        async with http.stream("GET", f"/api/tasks/{task_id}/events") as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            live = _parse_sse((await response.aread()).decode())  # the stream ends with the task
        assert [e["event"] for e in live][-1] == "task_succeeded"
        assert "task_progress" in [e["event"] for e in live]
        ids = [e["id"] for e in live]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
        after = ids[2]
        replay = await http.get(f"/api/tasks/{task_id}/events", headers={"last-event-id": str(after)})
        assert [e["id"] for e in _parse_sse(replay.text)] == ids[3:]
        query = await http.get(f"/api/tasks/{task_id}/events?last_event_id={ids[-2]}")
        assert [e["event"] for e in _parse_sse(query.text)] == ["task_succeeded"]
        bad = await http.get(f"/api/tasks/{task_id}/events", headers={"last-event-id": "yesterday"})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "last_event_id"
