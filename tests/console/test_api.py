"""The endpoints the console reads: /api/me, usage series, budget overview, cost per artefact, monitor, static files."""

from __future__ import annotations

import httpx
import pytest

from tests.console.conftest import OTHER, PROJECT, Seeded


def test_me_names_the_caller(seeded: Seeded) -> None:
    me = seeded.api("/api/me", as_key=seeded.viewer)
    assert me["project"] == PROJECT and me["role"] == "viewer" and me["root"] is False
    root = seeded.api("/api/me")
    assert root["root"] is True and root["role"] == "admin"
    assert seeded.server.api("GET", "/api/me", key="sk-aitp-nope").status_code == 401


def test_series_adds_up_to_the_usage_report(seeded: Seeded) -> None:
    for stack in ("tier", "model"):
        series = seeded.api("/api/usage/series", as_key=seeded.member, stack=stack)
        usage = seeded.api("/api/usage", as_key=seeded.member)
        assert series["project"] == PROJECT and series["bucket"] == "day"
        assert series["totals"]["requests"] == usage["totals"]["requests"]
        assert series["totals"]["tokens"] == usage["totals"]["total_tokens"]
        assert abs(series["totals"]["cost_usd"] - usage["totals"]["cost_usd"]) < 1e-9
        grouped = {
            g["key"]: g["requests"] for g in seeded.api("/api/usage", as_key=seeded.member, group_by=stack)["groups"]
        }
        assert {s["key"]: s["total_requests"] for s in series["series"]} == grouped
        for line in series["series"]:
            assert len(line["requests"]) == len(line["cost_usd"]) == len(series["buckets"]) == 31


def test_series_by_hour_and_by_key(seeded: Seeded) -> None:
    hourly = seeded.api("/api/usage/series", as_key=seeded.member, bucket="hour", **{"from": "2026-01-01T00:00:00Z",
                        "to": "2026-01-02T00:00:00Z"})  # fmt: skip
    assert hourly["buckets"][0] == "2026-01-01T00:00:00Z" and len(hourly["buckets"]) == 24
    assert hourly["series"] == [] and hourly["totals"]["requests"] == 0
    mine = seeded.api("/api/usage/series", as_key=seeded.member, key=seeded.member_id)
    everyone = seeded.api("/api/usage/series")  # the server admin key: every project
    assert 0 < mine["totals"]["requests"] < everyone["totals"]["requests"]
    # Another project's key filter finds nothing: the project filter still holds.
    other_id = seeded.api("/api/me", as_key=seeded.other)["key_id"]
    assert seeded.api("/api/usage/series", as_key=seeded.member, key=other_id)["totals"]["requests"] == 0


def test_series_refuses_bad_input(seeded: Seeded) -> None:
    server = seeded.server
    bad = server.api("GET", "/api/usage/series", params={"bucket": "week"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "bucket"
    many = server.api("GET", "/api/usage/series", params={"bucket": "hour", "from": "2020-01-01"})
    assert many.status_code == 400 and "bucket=day" in many.json()["error"]["message"]
    hidden = server.api("GET", "/api/usage/series", key=seeded.member, params={"project": OTHER})
    assert hidden.status_code == 404


def test_budget_overview_forecasts(seeded: Seeded) -> None:
    found = seeded.api("/api/budgets/overview", as_key=seeded.viewer)
    by_name = {b["name"]: b for b in found["items"]}
    day = by_name["team day"]
    usd = day["status"]["usd"]
    assert (usd["used"] + usd["reserved"]) / usd["limit"] >= 0.8
    forecast = day["forecast"]["usd"]
    assert forecast["spent_last_24h"] > 0
    assert forecast["rate_per_hour"] == pytest.approx(forecast["spent_last_24h"] / 24)
    assert forecast["remaining"] == pytest.approx(max(0.0, usd["limit"] - usd["used"] - usd["reserved"]))
    assert forecast["runs_out_at"] is not None
    over = by_name["member month"]["forecast"]["usd"]
    assert over["remaining"] == 0 and over["before_reset"] is True
    assert "tokens" in by_name["tokens total"]["forecast"] and "usd" not in by_name["tokens total"]["forecast"]
    assert (
        seeded.server.api("GET", "/api/budgets/overview", key=seeded.other, params={"project": PROJECT}).status_code
        == 404
    )
    assert seeded.api("/api/budgets/overview", as_key=seeded.other)["items"] == []


async def test_artefact_costs_match_the_rows(seeded: Seeded) -> None:
    found = seeded.api("/api/usage/artefacts", as_key=seeded.member)
    generation = found["generation"]
    cases = seeded.api("/api/testcases", as_key=seeded.member, task_id=seeded.task_id)
    assert generation["tasks"] >= 1 and generation["generated_cases"] >= cases["total"] > 0
    rows = await seeded.server.rows(
        "SELECT SUM(u.cost_usd) AS cost FROM usage_records u JOIN tasks t ON t.id = u.task_id "
        "WHERE t.project_id = :p AND t.kind = 'testcase.generate'",
        p=PROJECT,
    )
    assert abs(generation["cost_usd"] - rows[0]["cost"]) < 1e-9
    assert generation["cost_per_generated_case_usd"] == round(
        generation["cost_usd"] / generation["generated_cases"], 10
    )
    assert found["browser"] == {"runs": 0, "cost_usd": 0.0, "cost_per_run_usd": None}
    assert seeded.api("/api/usage/artefacts", as_key=seeded.other)["generation"]["tasks"] == 0


def test_monitor(seeded: Seeded) -> None:
    member = seeded.api("/api/monitor", as_key=seeded.member)
    assert member["system"] is None and member["project"] == PROJECT
    chat = next(r for r in member["routes"] if r["route"] == "chat")
    assert chat["requests"] >= 6 and chat["p50_ms"] <= chat["p95_ms"] <= chat["p99_ms"]
    # The fake upstream answers at once here, yet its time is measured: a share above 0, below 1.
    assert 0 < chat["upstream_share"] < 1 and 0 <= chat["overhead_p95_ms"] <= chat["p99_ms"]
    assert 0 < member["totals"]["upstream_share"] < 1
    stats = seeded.api("/api/tasks/stats", as_key=seeded.member)
    assert member["tasks"]["queue_depth"] == stats["backlog"]
    root = seeded.api("/api/monitor", window_s=60)
    system = root["system"]
    # Embedded mode: this process is the one worker, with its three threads.
    workers = system["workers"]
    assert (workers["mode"], workers["threads_in_this_process"], workers["count"], workers["threads"]) == (
        "embedded",
        3,
        1,
        3,
    )
    assert workers["items"][0]["pid"] == system["process"]["pid"] and workers["items"][0]["threads"] == 3
    assert (
        system["ledger"]["median_ms"] > 0 and system["process"]["rss_bytes"] > 0 and system["disk"]["total_bytes"] > 0
    )
    # The browser pool's counters with the caps the server was configured with (max_browsers 1, default queue).
    pool = system["browser_pool"]
    assert pool["cap"] == pool["max_browsers"] == 1 and pool["queue_cap"] == 100 and pool["breaker_open"] is False
    assert pool["in_use"] == pool["queued"] == 0 and pool["browsers"] <= 1
    bad = seeded.server.api("GET", "/api/monitor", params={"window_s": "5"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "window_s"


def test_task_list_narrowed_to_a_project(seeded: Seeded) -> None:
    mine = seeded.api("/api/tasks", project=PROJECT)
    assert mine["total"] >= 2 and {t["project"] for t in mine["items"]} == {PROJECT}
    assert seeded.api("/api/tasks/stats", project=OTHER)["total"] == 0
    hidden = seeded.server.api("GET", "/api/tasks", key=seeded.other, params={"project": PROJECT})
    assert hidden.status_code == 404


def test_console_is_served_compressed_with_a_strict_policy(seeded: Seeded) -> None:
    base = seeded.server.base_url
    with httpx.Client(base_url=base) as client:
        assert client.get("/dashboard").headers["location"] == "/console/"
        assert client.get("/console").headers["location"] == "/console/"
        page = client.get("/console/", headers={"accept-encoding": "gzip"})
        assert page.status_code == 200 and "<title>aitp console</title>" in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        script = client.get("/console/js/main.js", headers={"accept-encoding": "gzip"})
        assert script.headers["content-encoding"] == "gzip" and "javascript" in script.headers["content-type"]
        assert "import" in script.text  # httpx undid the gzip
        # No key is needed for the page itself; every API call it makes is authenticated.
        assert client.get("/api/usage/series").status_code == 401
