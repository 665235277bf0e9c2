"""A block budget's 429 says why: used up (ask an admin, or wait for the reset) or only held by calls in flight."""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import httpx

from tests.conftest import Server
from tests.fakes.llm_upstream import FakeUpstream, Reply

LIMIT = 2000


async def _ask(http: httpx.AsyncClient, server: Server, key: str, max_tokens: int) -> httpx.Response:
    return await http.post(
        f"{server.v1}/chat/completions",
        json={"model": "turbo", "messages": [{"role": "user", "content": "x"}], "max_tokens": max_tokens},
        headers={"authorization": f"Bearer {key}"},
    )


def _budget(server: Server, project: str) -> dict[str, Any]:
    response = server.api(
        "PUT", "/api/budgets", json={"project": project, "limit_tokens": LIMIT, "period": "total", "action": "block"}
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_refusal_names_reservations_in_flight_then_exhaustion(gateway: Server, fake: FakeUpstream) -> None:
    project = "rf-" + secrets.token_hex(4)
    key = gateway.new_key(project)
    budget = _budget(gateway, project)
    fake.set_default("qwen-turbo", Reply(content="ok", prompt_tokens=10, completion_tokens=20))
    # the first call holds (nearly) the whole budget while the upstream takes its time
    fake.script("qwen-turbo", Reply(content="ok", prompt_tokens=10, completion_tokens=20, delay_ms=1500))
    async with httpx.AsyncClient(timeout=30) as http:
        seen = len(fake.requests_for("qwen-turbo"))
        slow = asyncio.create_task(_ask(http, gateway, key, LIMIT))
        deadline = time.monotonic() + 10
        while len(fake.requests_for("qwen-turbo")) == seen:
            assert time.monotonic() < deadline, "the first call never reached the upstream"
            await asyncio.sleep(0.02)

        busy = await _ask(http, gateway, key, 100)
        assert busy.status_code == 429, busy.text
        error = busy.json()["error"]
        assert error["code"] == "budget_exceeded" and error["budget_id"] == budget["id"]
        assert "exhausted" not in error["message"] and "ask an admin" not in error["message"], error["message"]
        assert "reserved by requests in flight" in error["message"] and "retry in a few seconds" in error["message"]
        assert f"{error['reserved']:,.0f} tokens are reserved" in error["message"]
        assert error["reason"] == "reserved_in_flight"
        assert error["reserved"] > LIMIT / 2 and error["remaining"] < 100
        assert 2 <= int(busy.headers["retry-after"]) <= 5

        assert (await slow).status_code == 200
        assert (await _ask(http, gateway, key, 100)).status_code == 200, "the room came back once it settled"

        # now spend it for real: the rest of the budget in one call, then nothing fits
        fake.script("qwen-turbo", Reply(content="ok", prompt_tokens=10, completion_tokens=LIMIT))
        assert (await _ask(http, gateway, key, LIMIT)).status_code == 200
        spent = await _ask(http, gateway, key, 100)
    assert spent.status_code == 429, spent.text
    error = spent.json()["error"]
    assert error["code"] == "budget_exceeded" and error["reason"] == "exhausted" and error["reserved"] == 0
    assert "exhausted" in error["message"] and "ask an admin to raise it" in error["message"], error["message"]
    assert "in flight" not in error["message"]
    state = gateway.api("GET", f"/api/budgets/{budget['id']}/status").json()["status"]
    assert LIMIT - 100 < state["tokens"]["used"] <= LIMIT and state["tokens"]["reserved"] == 0
