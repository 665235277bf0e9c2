"""The task REST API on an embedded server (SQLite and PostgreSQL): submit, validate, read, list, isolate."""

from __future__ import annotations

import asyncio

import httpx

from tests.conftest import Server

from ..conftest import events, project_key, submit, wait_task


async def test_a_task_runs_to_success_and_reports_its_steps(embedded: Server) -> None:
    key = project_key(embedded)
    task = submit(embedded, key, input={"seconds": 0.3})
    assert task["status"] == "pending" and task["kind"] == "system.sleep"
    assert task["input"] == {"seconds": 0.3, "fail_times": 0, "review": False}
    done = await wait_task(embedded, key, task["id"], "succeeded")
    assert done["progress"] == 100 and done["attempts"] == 1
    assert done["result"]["slept_s"] == 0.3 and done["started_at"] and done["finished_at"]
    types = [e["type"] for e in await events(embedded, task["id"])]
    assert types == [
        "task_created",
        "task_started",
        "execution_started",
        "task_progress",
        "task_succeeded",
    ]


async def test_bad_input_names_the_field_and_creates_nothing(embedded: Server) -> None:
    key = project_key(embedded)
    cases = [
        ({"kind": "system.sleep", "input": {"seconds": 601}}, "input.seconds"),
        ({"kind": "system.sleep", "input": {"seconds": "soon"}}, "input.seconds"),
        ({"kind": "system.sleep", "input": {"fail_times": 1, "colour": "red"}}, "input.colour"),
        ({"kind": "system.nap", "input": {}}, "kind"),
        ({"kind": "system.sleep", "input": [1]}, "input"),
        ({"input": {}}, "kind"),
        ({"kind": "system.sleep", "priority": 1000}, "priority"),
    ]
    for body, param in cases:
        response = embedded.api("POST", "/api/tasks", key=key, json=body)
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["param"] == param, error
        assert param in error["message"]
    assert embedded.api("GET", "/api/tasks", key=key).json()["total"] == 0


async def test_another_projects_task_is_not_found(embedded: Server) -> None:
    owner, stranger = project_key(embedded), project_key(embedded)
    task = submit(embedded, owner, input={"seconds": 0})
    for method, path in [
        ("GET", f"/api/tasks/{task['id']}"),
        ("POST", f"/api/tasks/{task['id']}/cancel"),
        ("GET", f"/api/tasks/{task['id']}/events"),
    ]:
        response = embedded.api(method, path, key=stranger)
        assert response.status_code == 404, (path, response.text)
        assert response.json()["error"]["code"] == "task_not_found"
    review = embedded.api("POST", f"/api/tasks/{task['id']}/review", key=stranger, json={"action": "approved"})
    assert review.status_code == 404
    assert embedded.api("GET", "/api/tasks", key=stranger).json()["total"] == 0
    assert embedded.api("GET", "/api/tasks/stats", key=stranger).json()["total"] == 0
    assert embedded.api("GET", f"/api/tasks/{task['id']}").status_code == 200  # the server admin key sees all


async def test_viewers_read_but_cannot_submit_cancel_or_review(embedded: Server) -> None:
    member = project_key(embedded)
    project = embedded.api("GET", "/api/tasks", key=member)  # warm-up: same project for the viewer below
    assert project.status_code == 200
    task = submit(embedded, member, input={"seconds": 0})
    me = embedded.api("GET", f"/api/tasks/{task['id']}", key=member).json()["project"]
    viewer = embedded.new_key(me, role="viewer")
    assert embedded.api("GET", f"/api/tasks/{task['id']}", key=viewer).status_code == 200
    refused = embedded.api("POST", "/api/tasks", key=viewer, json={"kind": "system.sleep"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "role_forbidden"
    assert embedded.api("POST", f"/api/tasks/{task['id']}/cancel", key=viewer).status_code == 403
    assert embedded.api("POST", "/api/tasks", json={"kind": "system.sleep"}, key="sk-aitp-nope").status_code == 401


async def test_listing_filters_pages_and_rejects_bad_parameters(embedded: Server) -> None:
    key = project_key(embedded)
    ids = [submit(embedded, key, input={"seconds": 0})["id"] for _ in range(3)]
    for task_id in ids:
        await wait_task(embedded, key, task_id, "succeeded")
    page = embedded.api("GET", "/api/tasks?status=succeeded&kind=system.sleep&limit=2&offset=1", key=key).json()
    assert page["total"] == 3 and page["limit"] == 2 and page["offset"] == 1 and len(page["items"]) == 2
    assert {t["id"] for t in page["items"]} <= set(ids)
    assert embedded.api("GET", "/api/tasks?status=pending", key=key).json()["total"] == 0
    for query, param in [
        ("status=done", "status"),
        ("limit=0", "limit"),
        ("offset=-1", "offset"),
        ("kind=x.y", "kind"),
    ]:
        response = embedded.api("GET", f"/api/tasks?{query}", key=key)
        assert response.status_code == 400 and response.json()["error"]["param"] == param, response.text
    stats = embedded.api("GET", "/api/tasks/stats", key=key).json()
    assert stats["total"] == 3 and stats["by_status"] == {"succeeded": 3} and stats["success_rate"] == 1.0
    assert stats["backlog"] == 0 and stats["mean_duration_s"] is not None
    assert stats["by_kind"] == {"system.sleep": {"succeeded": 3}}


async def test_concurrent_submits_with_one_idempotency_key_make_one_task(embedded: Server) -> None:
    key = project_key(embedded)
    body = {"kind": "system.sleep", "input": {"seconds": 0}, "idempotency_key": "order-42"}
    async with httpx.AsyncClient(base_url=embedded.base_url, headers={"authorization": f"Bearer {key}"}) as http:
        responses = await asyncio.gather(*[http.post("/api/tasks", json=body) for _ in range(20)])
    assert sorted(r.status_code for r in responses) == [200] * 19 + [201], [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    assert embedded.api("GET", "/api/tasks", key=key).json()["total"] == 1
    again = submit(embedded, key, expect=200, **body)
    assert again["id"] == responses[0].json()["id"]
    reused = embedded.api("POST", "/api/tasks", key=key, json={**body, "input": {"seconds": 1}})
    assert reused.status_code == 409 and reused.json()["error"]["param"] == "idempotency_key"
    header = embedded.api(
        "POST", "/api/tasks", key=key, json={"kind": "system.sleep"}, headers={"idempotency-key": "h"}
    )
    assert submit(embedded, key, expect=200, idempotency_key="h")["id"] == header.json()["id"]


async def test_metrics_expose_task_gauges(embedded: Server) -> None:
    key = project_key(embedded)
    await wait_task(embedded, key, submit(embedded, key)["id"], "succeeded")
    text = httpx.get(f"{embedded.base_url}/metrics").text
    assert 'aitp_tasks{kind="system.sleep",status="succeeded"}' in text
    for name in ("aitp_task_queue_depth", "aitp_task_duration_seconds_count", "aitp_task_duplicates_suppressed_total"):
        assert name in text
