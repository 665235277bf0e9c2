"""The upstream's part of each call's latency: on the usage row, in ``/api/usage`` and in ``/api/monitor``.

Through a live ``aitp serve`` on SQLite and PostgreSQL, with the fake upstream
made slow, so the upstream's share must be most of the time and the rest (the
gateway's own time) small.
"""

from __future__ import annotations

from typing import Any

from tests.conftest import Server
from tests.fakes.llm_upstream import FakeUpstream, Reply

from .test_chat import USAGE_BY_ID, client
from .test_reports import by_key, project, usage

DELAY_MS = 200.0


async def _row(server: Server, rid: str) -> dict[str, Any]:
    [row] = await server.wait_rows(USAGE_BY_ID, rid=rid)
    return row


async def test_rows_reports_and_monitor_carry_the_upstreams_time(gateway: Server, fake: FakeUpstream) -> None:
    name, key = project(gateway)
    c = client(gateway, key)
    fake.script("qwen-turbo", Reply(content="slow", delay_ms=DELAY_MS))
    chat = c.chat.completions.with_raw_response.create(model="turbo", messages=[{"role": "user", "content": "x"}])
    # A stream that answers at once and then takes DELAY_MS between its chunks: the waits count too.
    fake.script("qwen-turbo", Reply(content="a b c d", chunks=4, chunk_delay_ms=DELAY_MS / 4))
    with c.chat.completions.with_streaming_response.create(
        model="turbo", messages=[{"role": "user", "content": "y"}], stream=True
    ) as response:
        stream_rid = response.headers["x-request-id"]
        assert "".join(ch.choices[0].delta.content or "" for ch in response.parse() if ch.choices) == "a b c d"
    fake.script("text-embedding-v3", Reply(delay_ms=DELAY_MS))
    embedded = c.embeddings.with_raw_response.create(model="text-embedding-v3", input=["需求"])

    for rid in (chat.headers["x-request-id"], stream_rid, embedded.headers["x-request-id"]):
        row = await _row(gateway, rid)
        assert DELAY_MS * 0.9 <= row["upstream_ms"] <= row["latency_ms"], row

    report = usage(gateway, key, group_by="endpoint")
    assert report["project"] == name
    routes = by_key(report)
    for endpoint in ("chat", "embeddings"):
        assert 0.5 < routes[endpoint]["upstream_share"] <= 1, routes[endpoint]
        assert routes[endpoint]["p95_overhead_ms"] >= 0
    monitor = gateway.api("GET", "/api/monitor", key=key).json()
    by_route = {r["route"]: r for r in monitor["routes"]}
    assert by_route["chat"]["upstream_share"] == routes["chat"]["upstream_share"]
    assert by_route["chat"]["overhead_p95_ms"] == routes["chat"]["p95_overhead_ms"]
    assert 0.5 < monitor["totals"]["upstream_share"] <= 1
    assert monitor["totals"]["upstream_share"] == report["totals"]["upstream_share"]


async def test_failed_attempts_and_the_fallback_all_count(gateway: Server, fake: FakeUpstream) -> None:
    _, key = project(gateway)
    # plus fails after DELAY_MS on every attempt (litellm retries inside the call), then falls back to turbo.
    fake.script("qwen-plus", *[Reply(status=500, delay_ms=DELAY_MS)] * 3)
    fake.script("qwen-turbo", Reply(content="saved", delay_ms=DELAY_MS))
    raw = client(gateway, key).chat.completions.with_raw_response.create(
        model="plus", messages=[{"role": "user", "content": "x"}]
    )
    assert "fallback" in raw.headers["x-aitp-route-reason"]
    row = await _row(gateway, raw.headers["x-request-id"])
    assert row["status"] == "ok"
    attempts = len(fake.requests_for("qwen-plus")) + len(fake.requests_for("qwen-turbo"))
    assert attempts >= 2
    assert DELAY_MS * 0.9 * attempts <= row["upstream_ms"] <= row["latency_ms"], row
