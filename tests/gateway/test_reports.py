"""Usage reports (``/api/usage``, ``/api/usage/savings``) through a live ``aitp serve``.

Rows are seeded straight into the server's database, each test in its own
project and its own window in the past, so the rows other tests write (now,
in other projects) never reach these reports.
"""

from __future__ import annotations

import asyncio
import csv
import io
import math
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import openai
import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.usage import UsageRecord
from tests.conftest import Server
from tests.fakes.llm_upstream import FakeUpstream, Reply

# dashscope/qwen-plus in litellm's bundled price map: $0.4/M input, $1.2/M output
PLUS_IN, PLUS_OUT = 4e-7, 1.2e-6
METRICS = ("requests", "prompt_tokens", "completion_tokens", "total_tokens", "cost_usd", "errors")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def row(created_at: datetime, project: str | None, **fields: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "request_id": secrets.token_hex(8),
        "created_at": created_at,
        "endpoint": "chat",
        "project_id": project,
        "key_id": "key_a",
        "user": None,
        "model_requested": "auto",
        "model_used": "dashscope/qwen-turbo",
        "deployment": "qwen-turbo",
        "tier": "turbo",
        "route_reason": "short_prompt",
        "stream": False,
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "cost_usd": 10 * 5e-8 + 5 * 2e-7,
        "latency_ms": 100.0,
        "upstream_ms": None,  # as on rows written before the upstream's time was recorded
        "status": "ok",
        "http_status": 200,
        "error_type": None,
        "attempts": 1,
        "prompt_name": None,
        "prompt_version": None,
    }
    values.update(fields)
    return values


async def seed(server: Server, rows: list[dict[str, Any]]) -> None:
    engine = create_async_engine(server.database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(insert(UsageRecord), rows)
    finally:
        await engine.dispose()


def project(server: Server, role: str = "member") -> tuple[str, str]:
    """A fresh project and a key of ``role`` in it."""
    name = "rep-" + secrets.token_hex(5)
    return name, server.new_key(name, role)


def get(server: Server, path: str, key: str | None = None, **params: str) -> httpx.Response:
    return server.api("GET", path, key=key, params=params)


def usage(server: Server, key: str | None = None, **params: str) -> dict[str, Any]:
    response = get(server, "/api/usage", key, **params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def by_key(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {g["key"]: g for g in body["groups"]}


def nearest_rank(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(len(ordered) * p / 100)) - 1]


async def test_group_by_day_sums_percentiles_and_window_edges(gateway: Server) -> None:
    name, key = project(gateway)
    day1 = [row(at("2025-03-01T00:00:00") + timedelta(minutes=i), name, latency_ms=float(i + 1)) for i in range(10)]
    # 23:59:59.5 UTC is still March 2nd; the failed call counts as a request and an error.
    day2 = [
        row(
            at("2025-03-02T23:59:59.5"),
            name,
            latency_ms=float(11 + i),
            prompt_tokens=7,
            completion_tokens=1,
            cost_usd=1e-6,
        )
        for i in range(19)
    ]
    day2.append(
        row(
            at("2025-03-02T12:00:00"),
            name,
            latency_ms=500.0,
            status="error",
            http_status=502,
            prompt_tokens=0,
            completion_tokens=0,
            cost_usd=0.0,
        )
    )
    outside = [
        row(at("2025-02-28T23:59:59.999"), name),  # before 'from'
        row(at("2025-03-03T00:00:00"), name),  # at 'to', which is exclusive
        row(at("2025-03-01T10:00:00"), "someone-else"),
    ]
    await seed(gateway, day1 + day2 + outside)

    body = usage(gateway, key, **{"from": "2025-03-01", "to": "2025-03-03"})
    assert body["from"] == "2025-03-01T00:00:00Z" and body["to"] == "2025-03-03T00:00:00Z"
    assert body["group_by"] == "day" and body["project"] == name
    assert [g["key"] for g in body["groups"]] == ["2025-03-01", "2025-03-02"]
    first, second = body["groups"]
    assert {k: first[k] for k in METRICS} == {
        "requests": 10,
        "prompt_tokens": 100,
        "completion_tokens": 50,
        "total_tokens": 150,
        "cost_usd": pytest.approx(10 * (10 * 5e-8 + 5 * 2e-7)),
        "errors": 0,
    }
    # nearest rank: p50 of 1..10 is the 5th value, p95 the 10th
    assert (first["p50_latency_ms"], first["p95_latency_ms"]) == (5.0, 10.0)
    assert {k: second[k] for k in METRICS} == {
        "requests": 20,
        "prompt_tokens": 133,
        "completion_tokens": 19,
        "total_tokens": 152,
        "cost_usd": pytest.approx(19e-6),
        "errors": 1,
    }
    second_latencies = [float(11 + i) for i in range(19)] + [500.0]
    assert second["p50_latency_ms"] == nearest_rank(second_latencies, 50) == 20.0
    assert second["p95_latency_ms"] == nearest_rank(second_latencies, 95) == 29.0

    totals = body["totals"]
    for metric in METRICS:
        assert totals[metric] == pytest.approx(first[metric] + second[metric])
    everything = [float(i + 1) for i in range(10)] + second_latencies
    assert totals["p50_latency_ms"] == nearest_rank(everything, 50) == 15.0
    assert totals["p95_latency_ms"] == nearest_rank(everything, 95) == 29.0

    # Narrower windows, as datetimes with offsets: 2025-03-02T08:00+08:00 is midnight UTC.
    body = usage(gateway, key, **{"from": "2025-03-02T08:00:00+08:00", "to": "2025-03-02T12:00:00Z"})
    assert body["from"] == "2025-03-02T00:00:00Z" and body["to"] == "2025-03-02T12:00:00Z"
    assert body["groups"] == [] and body["totals"]["requests"] == 0
    assert body["totals"]["p50_latency_ms"] is None
    # An unencoded '+' arrives as a space; the offset is still understood.
    raw = gateway.api("GET", "/api/usage?from=2025-03-02T20:00:00+08:00&to=2025-03-02T20:00:01%2B08:00", key=key)
    assert raw.status_code == 200, raw.text
    assert raw.json()["from"] == "2025-03-02T12:00:00Z" and raw.json()["totals"]["requests"] == 1
    # A naive datetime is UTC.
    body = usage(gateway, key, **{"from": "2025-03-01T00:05:00", "to": "2025-03-01T00:07:00"})
    assert body["totals"]["requests"] == 2


async def test_group_by_each_dimension(gateway: Server) -> None:
    name, key = project(gateway)
    day = at("2025-04-10T09:00:00")
    await seed(
        gateway,
        [
            row(day, name, key_id="key_a", latency_ms=10.0),
            row(day, name, key_id="key_a", latency_ms=30.0, prompt_name="testcase.generate", prompt_version=3),
            row(
                day,
                name,
                key_id="key_b",
                model_used="dashscope/qwen-plus",
                tier="plus",
                prompt_tokens=100,
                completion_tokens=40,
                cost_usd=100 * PLUS_IN + 40 * PLUS_OUT,
                latency_ms=200.0,
                prompt_name="testcase.generate",
                prompt_version=3,
            ),
            row(
                day,
                name,
                key_id="key_b",
                model_used="dashscope/qwen-plus",
                tier="plus",
                prompt_name="testcase.generate",
                prompt_version=4,
                latency_ms=20.0,
            ),
            row(
                day,
                name,
                key_id=None,
                model_used=None,
                tier=None,
                prompt_tokens=0,
                completion_tokens=0,
                cost_usd=0.0,
                status="error",
                http_status=429,
                prompt_name="bug.triage",
                latency_ms=5.0,
            ),
        ],
    )
    window = {"from": "2025-04-10", "to": "2025-04-11"}
    expected = {
        "project": {name: 5},
        "key": {"(none)": 1, "key_a": 2, "key_b": 2},
        "model": {"(none)": 1, "dashscope/qwen-plus": 2, "dashscope/qwen-turbo": 2},
        "tier": {"(none)": 1, "plus": 2, "turbo": 2},
        "prompt": {"(none)": 1, "bug.triage": 1, "testcase.generate@3": 2, "testcase.generate@4": 1},
        "day": {"2025-04-10": 5},
    }
    reference = usage(gateway, key, **window, group_by="day")["totals"]
    assert reference["requests"] == 5 and reference["errors"] == 1
    assert reference["prompt_tokens"] == 130 and reference["completion_tokens"] == 55
    for group_by, counts in expected.items():
        body = usage(gateway, key, **window, group_by=group_by)
        assert body["group_by"] == group_by
        assert [g["key"] for g in body["groups"]] == sorted(counts), group_by
        assert {g["key"]: g["requests"] for g in body["groups"]} == counts, group_by
        assert body["totals"] == reference, group_by
    plus = by_key(usage(gateway, key, **window, group_by="tier"))["plus"]
    assert (plus["prompt_tokens"], plus["completion_tokens"], plus["total_tokens"]) == (110, 45, 155)
    assert plus["cost_usd"] == pytest.approx(100 * PLUS_IN + 40 * PLUS_OUT + 10 * 5e-8 + 5 * 2e-7)
    assert (plus["p50_latency_ms"], plus["p95_latency_ms"]) == (20.0, 200.0)
    assert by_key(usage(gateway, key, **window, group_by="key"))["(none)"]["errors"] == 1


async def test_csv_export_keeps_chinese_and_ends_with_total(gateway: Server) -> None:
    name, key = project(gateway)
    day = at("2025-05-05T05:00:00")
    await seed(
        gateway,
        [
            row(day, name, prompt_name="测试用例.生成", prompt_version=2, latency_ms=40.0, upstream_ms=30.0),
            row(
                day,
                name,
                prompt_name="测试用例.生成",
                prompt_version=2,
                latency_ms=60.0,
                cost_usd=0.25,
                upstream_ms=50.0,
            ),
            row(day, name, prompt_name="=HYPERLINK(1)", prompt_version=1),
            row(day, name),
        ],
    )
    window = {"from": "2025-05-05", "to": "2025-05-06"}
    response = get(gateway, "/api/usage", key, **window, group_by="prompt", format="csv")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == 'attachment; filename="aitp-usage-prompt.csv"'
    assert response.content.startswith(b"\xef\xbb\xbf")  # the BOM Excel needs to read UTF-8
    table = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"), newline="")))
    assert table[0] == [
        "prompt",
        "requests",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "cost_usd",
        "errors",
        "p50_latency_ms",
        "p95_latency_ms",
        "upstream_share",
        "p95_overhead_ms",
    ]
    records = {line[0]: dict(zip(table[0], line, strict=True)) for line in table[1:]}
    assert [line[0] for line in table[1:]] == ["(none)", "'=HYPERLINK(1)@1", "测试用例.生成@2", "TOTAL"]
    chinese = records["测试用例.生成@2"]
    assert (chinese["requests"], chinese["total_tokens"], chinese["errors"]) == ("2", "30", "0")
    assert float(chinese["cost_usd"]) == pytest.approx(0.25 + 10 * 5e-8 + 5 * 2e-7)
    assert (chinese["p50_latency_ms"], chinese["p95_latency_ms"]) == ("40", "60")
    assert (chinese["upstream_share"], chinese["p95_overhead_ms"]) == ("0.8", "10")
    assert (records["(none)"]["upstream_share"], records["(none)"]["p95_overhead_ms"]) == ("", "")  # not measured
    json_totals = usage(gateway, key, **window, group_by="prompt")["totals"]
    total = records["TOTAL"]
    assert int(total["requests"]) == json_totals["requests"] == 4
    assert float(total["cost_usd"]) == pytest.approx(json_totals["cost_usd"])
    assert float(total["p95_latency_ms"]) == json_totals["p95_latency_ms"]


async def test_upstream_share_and_the_gateways_own_time(gateway: Server) -> None:
    name, key = project(gateway)
    day = at("2025-08-08T08:00:00")
    await seed(
        gateway,
        [
            row(day, name, latency_ms=100.0, upstream_ms=80.0),
            row(day, name, latency_ms=200.0, upstream_ms=150.0),
            # Refused before any upstream call: all of its time is the gateway's own.
            row(day, name, latency_ms=50.0, upstream_ms=0.0, status="error", http_status=429),
            # Written before upstream time was recorded: left out of the share, not counted as overhead.
            row(day, name, latency_ms=1000.0),
            row(day, name, endpoint="embeddings", latency_ms=30.0),
        ],
    )
    body = usage(gateway, key, **{"from": "2025-08-08", "to": "2025-08-09"}, group_by="endpoint")
    chat, embeddings = by_key(body)["chat"], by_key(body)["embeddings"]
    assert chat["upstream_ms"] == 230.0
    assert chat["upstream_share"] == round(230 / 350, 6)
    assert chat["p95_overhead_ms"] == nearest_rank([20.0, 50.0, 50.0], 95) == 50.0
    assert chat["p99_latency_ms"] == 1000.0  # latency percentiles still count every row
    assert (embeddings["upstream_share"], embeddings["p95_overhead_ms"], embeddings["upstream_ms"]) == (None, None, 0.0)
    totals = body["totals"]
    assert (totals["upstream_share"], totals["p95_overhead_ms"]) == (chat["upstream_share"], 50.0)


async def test_savings_prices_auto_calls_at_plus(gateway: Server) -> None:
    name, key = project(gateway)
    day = at("2025-06-01T12:00:00")
    turbo_cost = 1000 * 5e-8 + 200 * 2e-7
    plus_cost = 3000 * PLUS_IN + 500 * PLUS_OUT
    await seed(
        gateway,
        [
            *(row(day, name, prompt_tokens=1000, completion_tokens=200, cost_usd=turbo_cost) for _ in range(3)),
            row(
                day,
                name,
                tier="plus",
                model_used="dashscope/qwen-plus",
                prompt_tokens=3000,
                completion_tokens=500,
                cost_usd=plus_cost,
            ),
            # a cascade's failed turbo answer is paid for: actual cost, but not priced at plus
            row(day, name, status="schema_failed", prompt_tokens=9999, cost_usd=1.0),
            # not counted: asked for a tier explicitly, failed, or outside the window
            row(day, name, model_requested="turbo", prompt_tokens=9999, cost_usd=1.0),
            row(day, name, status="error", http_status=502, prompt_tokens=9999, cost_usd=1.0),
            row(at("2025-06-02T00:00:00"), name, prompt_tokens=9999, cost_usd=1.0),
        ],
    )
    response = get(gateway, "/api/usage/savings", key, **{"from": "2025-06-01", "to": "2025-06-02"})
    assert response.status_code == 200, response.text
    body = response.json()
    actual = 3 * turbo_cost + plus_cost + 1.0
    all_plus = 3 * (1000 * PLUS_IN + 200 * PLUS_OUT) + plus_cost
    assert body["auto_requests"] == 4
    assert body["turbo_share"] == pytest.approx(0.75)
    assert body["actual_cost_usd"] == pytest.approx(actual)
    assert body["all_plus_cost_usd"] == pytest.approx(all_plus)
    assert body["saved_usd"] == pytest.approx(all_plus - actual)
    assert body["saved_ratio"] == pytest.approx((all_plus - actual) / all_plus, abs=1e-6)
    assert body["plus_price"] == {"input_per_token": PLUS_IN, "output_per_token": PLUS_OUT}
    assert set(body["by_tier"]) == {"plus", "turbo"}
    turbo = body["by_tier"]["turbo"]
    assert (turbo["requests"], turbo["prompt_tokens"], turbo["completion_tokens"]) == (3, 3000, 600)
    assert turbo["actual_cost_usd"] == pytest.approx(3 * turbo_cost + 1.0)
    assert turbo["all_plus_cost_usd"] == pytest.approx(3 * (1000 * PLUS_IN + 200 * PLUS_OUT))
    assert body["by_tier"]["plus"]["saved_usd"] == pytest.approx(0.0, abs=1e-12)

    empty = get(gateway, "/api/usage/savings", key, **{"from": "2025-06-03", "to": "2025-06-04"}).json()
    assert empty["auto_requests"] == 0 and empty["by_tier"] == {}
    assert empty["turbo_share"] is None and empty["saved_ratio"] is None and empty["saved_usd"] == 0


async def test_projects_are_isolated_and_every_role_can_read(gateway: Server) -> None:
    team_a, member_a = project(gateway)
    team_b, member_b = project(gateway)
    viewer_a = gateway.new_key(team_a, "viewer")
    admin_a = gateway.new_key(team_a, "admin")
    day = at("2025-07-07T07:00:00")
    await seed(gateway, [row(day, team_a), row(day, team_b), row(day, team_b)])
    window = {"from": "2025-07-07", "to": "2025-07-08"}

    for key in (member_a, viewer_a, admin_a):
        body = usage(gateway, key, **window, group_by="project")
        assert body["project"] == team_a and [g["key"] for g in body["groups"]] == [team_a]
        assert usage(gateway, key, **window, project=team_a)["totals"]["requests"] == 1
        assert get(gateway, "/api/usage/savings", key, **window).json()["auto_requests"] == 1
    for path in ("/api/usage", "/api/usage/savings"):
        for target in (team_b, "no-such-project"):
            refused = get(gateway, path, admin_a, **window, project=target)
            assert refused.status_code == 404, refused.text
            assert refused.json()["error"]["code"] == "project_not_found"
        assert get(gateway, path, gateway.admin_key, **window, project="no-such-project").status_code == 404
    assert usage(gateway, member_b, **window)["totals"]["requests"] == 2

    # The server admin key reads one project, or all of them.
    assert usage(gateway, gateway.admin_key, **window, project=team_b)["totals"]["requests"] == 2
    everything = usage(gateway, gateway.admin_key, **window, group_by="project")
    assert everything["project"] is None
    assert {g["key"]: g["requests"] for g in everything["groups"]} == {team_a: 1, team_b: 2}


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"from": "yesterday"}, "from"),
        ({"to": "2025-13-01"}, "to"),
        ({"from": "2025-03-01T25:00:00Z"}, "from"),
        ({"to": "0001-01-01"}, "to"),
        ({"from": "2025-03-02", "to": "2025-03-01"}, "to"),
        ({"from": "2025-03-01", "to": "2025-03-01"}, "to"),
        ({"group_by": "week"}, "group_by"),
        ({"format": "xlsx"}, "format"),
    ],
)
async def test_bad_parameters_are_400_naming_the_parameter(gateway: Server, params: dict[str, str], param: str) -> None:
    for path in ("/api/usage", "/api/usage/savings"):
        if path.endswith("savings") and param in {"group_by", "format"}:
            continue
        response = get(gateway, path, None, **params)
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert (error["type"], error["param"]) == ("invalid_request_error", param)
        assert param in error["message"]


async def test_reports_need_a_key(gateway: Server) -> None:
    for path in ("/api/usage", "/api/usage/savings"):
        response = httpx.get(gateway.base_url + path, timeout=10)
        assert response.status_code == 401, response.text


async def test_default_window_is_the_last_30_days_and_real_calls_show_up(gateway: Server, fake: FakeUpstream) -> None:
    name, key = project(gateway)
    now = datetime.now(UTC)
    await seed(gateway, [row(now - timedelta(days=29), name), row(now - timedelta(days=31), name)])
    fake.script("qwen-turbo", Reply(content="pong", prompt_tokens=11, completion_tokens=3))
    client = openai.OpenAI(base_url=gateway.v1, api_key=key, max_retries=0, timeout=20)
    client.chat.completions.create(model="auto", messages=[{"role": "user", "content": "ping"}])

    body: dict[str, Any] = {}
    for _ in range(100):  # usage rows are written in batches, off the request path
        body = usage(gateway, key, group_by="model")
        if body["totals"]["requests"] >= 2:
            break
        await asyncio.sleep(0.1)
    assert datetime.fromisoformat(body["to"]) - datetime.fromisoformat(body["from"]) == timedelta(days=30)
    assert body["totals"]["requests"] == 2
    assert by_key(body)["dashscope/qwen-turbo"]["prompt_tokens"] == 10 + 11
