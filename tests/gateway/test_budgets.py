"""Budgets and rate limits through live servers: block, downgrade, alerts, disconnects, replicas."""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import Server, ServerFactory, gateway_config
from tests.fakes.llm_upstream import FakeUpstream, Reply

from .test_chat import aclient, client


def fresh_project() -> str:
    return "b-" + secrets.token_hex(4)


def in_one_minute(needed_s: float = 10.0) -> None:
    """Rate limits count in fixed UTC minutes, so a burst counted exactly must not straddle two of them.

    When fewer than ``needed_s`` seconds are left in the current minute, wait for the next one.
    """
    left = 60.0 - time.time() % 60.0
    if left < needed_s:
        time.sleep(left + 0.05)


def budget(server: Server, **spec: Any) -> dict[str, Any]:
    response = server.api("PUT", "/api/budgets", json=spec)
    assert response.status_code in (200, 201), response.text
    return dict(response.json())


def status(server: Server, budget_id: str) -> dict[str, Any]:
    response = server.api("GET", f"/api/budgets/{budget_id}/status")
    assert response.status_code == 200, response.text
    return dict(response.json()["status"])


def test_block_budget_refuses_with_scope_remaining_and_reset(gateway: Server, fake: FakeUpstream) -> None:
    project = fresh_project()
    key = gateway.new_key(project)
    b = budget(gateway, project=project, limit_tokens=200, period="day", action="block")
    fake.set_default("qwen-turbo", Reply(content="ok", prompt_tokens=10, completion_tokens=20))
    c = client(gateway, key)
    served = 0
    with pytest.raises(openai.RateLimitError) as info:
        for _ in range(50):
            c.chat.completions.create(model="turbo", messages=[{"role": "user", "content": "x"}], max_tokens=20)
            served += 1
    error = info.value.body
    assert error["type"] == "budget_exceeded" and error["code"] == "budget_exceeded"
    assert error["scope"] == "project" and error["budget_id"] == b["id"]
    assert error["resets_at"].endswith("T00:00:00Z")
    assert "exhausted" in error["message"] and "resets" in error["message"]
    assert info.value.response.headers["retry-after"]
    state = status(gateway, b["id"])
    assert state["tokens"]["used"] == served * 30
    assert state["tokens"]["used"] <= 200 and state["tokens"]["reserved"] == 0
    assert state["current_action"] == "blocking"
    assert served >= 3
    # used stops short of the limit (worst-case reservations), yet a refusal means the budget is full
    alerts = gateway.api("GET", f"/api/alerts?project={project}").json()["items"]
    assert sorted(a["threshold"] for a in alerts if a["unit"] == "tokens") == [0.5, 0.8, 1.0]


def test_usd_budget_and_max_tokens_cap(gateway: Server, fake: FakeUpstream) -> None:
    project = fresh_project()
    key = gateway.new_key(project)
    budget(gateway, project=project, limit_usd=0.01, period="month", action="block")
    raw = client(gateway, key).chat.completions.with_raw_response.create(
        model="turbo", messages=[{"role": "user", "content": "x"}]
    )
    # no max_tokens asked: the reserved ceiling is sent upstream and said in a header
    assert raw.headers["x-aitp-max-tokens"] == "4096"
    assert fake.requests_for("qwen-turbo")[-1]["max_tokens"] == 4096


def test_near_the_end_max_tokens_shrinks_instead_of_refusing(gateway: Server, fake: FakeUpstream) -> None:
    project = fresh_project()
    key = gateway.new_key(project)
    budget(gateway, project=project, limit_tokens=600, period="day", action="block")
    fake.set_default("qwen-turbo", Reply(content="ok", prompt_tokens=5, completion_tokens=5))
    raw = client(gateway, key).chat.completions.with_raw_response.create(
        model="turbo", messages=[{"role": "user", "content": "x"}], max_tokens=1000
    )
    capped = int(raw.headers["x-aitp-max-tokens"])
    assert 64 <= capped < 600
    assert fake.requests_for("qwen-turbo")[-1]["max_tokens"] == capped


def test_viewer_and_member_keys_share_project_budget(gateway: Server, fake: FakeUpstream) -> None:
    project = fresh_project()
    k1, k2 = gateway.new_key(project), gateway.new_key(project)
    b = budget(gateway, project=project, limit_tokens=10_000, period="total", action="block")
    fake.set_default("qwen-turbo", Reply(content="ok", prompt_tokens=3, completion_tokens=4))
    for key in (k1, k2):
        client(gateway, key).chat.completions.create(model="turbo", messages=[{"role": "user", "content": "x"}])
    state = status(gateway, b["id"])
    assert state["tokens"]["used"] == 14 and state["tokens"]["resets_at"] is None


def test_key_and_user_budgets(gateway: Server, fake: FakeUpstream) -> None:
    project = fresh_project()
    key = gateway.new_key(project)
    key_id = gateway.api("GET", f"/api/keys?project={project}").json()["items"][0]["id"]
    budget(gateway, project=project, scope="key", scope_id=key_id, limit_tokens=100_000, action="alert")
    ub = budget(gateway, project=project, scope="user", scope_id="alice", limit_tokens=40, action="block")
    fake.set_default("qwen-turbo", Reply(content="ok", prompt_tokens=10, completion_tokens=10))
    c = client(gateway, key)
    c.chat.completions.create(model="turbo", messages=[{"role": "user", "content": "x"}], max_tokens=10, user="alice")
    with pytest.raises(openai.RateLimitError) as info:
        for _ in range(3):
            c.chat.completions.create(
                model="turbo", messages=[{"role": "user", "content": "x"}], max_tokens=10, user="alice"
            )
    assert info.value.body["scope"] == "user" and info.value.body["budget_id"] == ub["id"]
    # another end user of the same key is not limited by alice's budget
    c.chat.completions.create(model="turbo", messages=[{"role": "user", "content": "x"}], max_tokens=10, user="bob")


def test_downgrade_budget_serves_plus_work_with_turbo(gateway: Server, fake: FakeUpstream) -> None:
    project = fresh_project()
    key = gateway.new_key(project)
    budget(gateway, project=project, limit_tokens=100, period="day", action="downgrade", downgrade_at=0.5)
    fake.set_default("qwen-plus", Reply(content="ok", prompt_tokens=30, completion_tokens=30))
    fake.set_default("qwen-turbo", Reply(content="ok", prompt_tokens=1, completion_tokens=1))
    c = client(gateway, key)
    first = c.chat.completions.with_raw_response.create(model="plus", messages=[{"role": "user", "content": "x"}])
    assert first.headers["x-aitp-tier"] == "plus"
    second = c.chat.completions.with_raw_response.create(model="plus", messages=[{"role": "user", "content": "x"}])
    assert second.headers["x-aitp-tier"] == "turbo"
    assert second.headers["x-aitp-route-reason"] == "budget_downgrade"
    long_prompt = [{"role": "user", "content": "word " * 300}]
    third = c.chat.completions.with_raw_response.create(model="auto", messages=long_prompt)
    assert third.headers["x-aitp-route-reason"] == "budget_downgrade"


class _Webhook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []
    failures_left = 1

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        if _Webhook.failures_left > 0:
            _Webhook.failures_left -= 1
            self.send_response(500)
        else:
            _Webhook.received.append(body)
            self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def webhook() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Webhook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


@pytest.fixture(scope="module")
async def alerting(fake: FakeUpstream, server_factory: ServerFactory, webhook: str) -> Server:
    config = gateway_config(fake, budgets={"alert_webhook_url": webhook})
    return await asyncio.to_thread(server_factory, config)


async def test_thresholds_fire_exactly_once_with_webhook(alerting: Server, fake: FakeUpstream) -> None:
    project = fresh_project()
    key = alerting.new_key(project)
    b = budget(alerting, project=project, limit_tokens=100, period="day", action="alert")
    fake.set_default("qwen-turbo", Reply(content="ok", prompt_tokens=5, completion_tokens=5))
    async with aclient(alerting, key) as c:
        await asyncio.gather(
            *[c.chat.completions.create(model="turbo", messages=[{"role": "user", "content": "x"}]) for _ in range(30)]
        )
    alerts = alerting.api("GET", f"/api/alerts?project={project}").json()["items"]
    assert sorted(a["threshold"] for a in alerts) == [0.5, 0.8, 1.0]
    assert {a["budget_id"] for a in alerts} == {b["id"]}
    deadline = time.monotonic() + 10
    while len([r for r in _Webhook.received if r["budget"]["id"] == b["id"]]) < 3 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    hooks = [r for r in _Webhook.received if r["budget"]["id"] == b["id"]]
    assert sorted(h["threshold"] for h in hooks) == [0.5, 0.8, 1.0], "delivered once each, the failure retried"
    assert status(alerting, b["id"])["tokens"]["used"] == 300, "alert-only budgets never refuse"
    metrics = httpx.get(f"{alerting.base_url}/metrics").text
    assert "aitp_budget_alerts_total" in metrics and "aitp_budget_used_ratio" in metrics


async def test_disconnect_mid_stream_is_charged_and_reservation_released(gateway: Server, fake: FakeUpstream) -> None:
    project = fresh_project()
    key = gateway.new_key(project)
    b = budget(gateway, project=project, limit_tokens=100_000, period="day", action="block")
    fake.script("qwen-turbo", Reply(content=" ".join(f"w{i}" for i in range(40)), chunks=40, chunk_delay_ms=100))
    async with (
        httpx.AsyncClient(timeout=20) as http,
        http.stream(
            "POST",
            f"{gateway.v1}/chat/completions",
            json={"model": "turbo", "stream": True, "messages": [{"role": "user", "content": "go"}]},
            headers={"authorization": f"Bearer {key}"},
        ) as response,
    ):
        seen = 0
        async for line in response.aiter_lines():
            seen += line.startswith("data: ")
            if seen >= 5:
                break
    deadline = time.monotonic() + 5
    state = status(gateway, b["id"])
    while (state["tokens"]["reserved"] > 0 or state["tokens"]["used"] == 0) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        state = status(gateway, b["id"])
    assert state["tokens"]["reserved"] == 0, "the reservation was released"
    assert 0 < state["tokens"]["used"] < 4096, "charged for what was generated, not the worst case"


def test_rpm_limit(gateway: Server) -> None:
    key = gateway.new_key(fresh_project(), rpm=3)
    c = client(gateway, key)
    in_one_minute()
    for _ in range(3):
        c.chat.completions.create(model="turbo", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.RateLimitError) as info:
        c.chat.completions.create(model="turbo", messages=[{"role": "user", "content": "x"}])
    assert info.value.body["code"] == "rate_limit_exceeded"
    assert info.value.body["scope"] == "key/rpm"
    assert 1 <= int(info.value.response.headers["retry-after"]) <= 60


def test_tpm_limit_counts_worst_case_then_actual(gateway: Server, fake: FakeUpstream) -> None:
    key = gateway.new_key(fresh_project(), tpm=300)
    fake.set_default("qwen-turbo", Reply(content="ok", prompt_tokens=5, completion_tokens=5))
    c = client(gateway, key)
    # each call reserves ~(prompt + 100) but settles at 10 tokens, so several fit in the minute
    for _ in range(5):
        c.chat.completions.create(model="turbo", messages=[{"role": "user", "content": "x"}], max_tokens=100)
    with pytest.raises(openai.RateLimitError) as info:
        c.chat.completions.create(model="turbo", messages=[{"role": "user", "content": "x"}], max_tokens=1000)
    assert info.value.body["scope"] == "key/tpm"
