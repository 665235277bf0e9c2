"""Templates and variable schemas that would block the server answer a quick 400 naming the limit.

Each attack runs against the live server while ``/healthz`` is polled: the
event loop must keep answering, and the attack must be refused in well under
a second (the render timeout itself is ``prompts.render_timeout_s``, 1 s).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from tests.conftest import Server

from .conftest import publish, spec, unique

# Wall-clock budgets: run alone, after the parallel part of the suite (see the Makefile).
pytestmark = pytest.mark.serial

QUICK_S = 2.0  # wall clock on a busy two-core machine (other live servers of the suite); the server spends far less
HEALTH_S = 0.5  # slowest /healthz answer allowed while an attack runs
NESTED_RANGES = "{% for i in range(3000) %}{% for j in range(3000) %}{{ i }}{% endfor %}{% endfor %}"
EMPTY_NESTED_RANGES = "{% for i in range(3000) %}{% for j in range(3000) %}{% endfor %}{% endfor %}"
SLOW_SORTS = "{% for i in range(5000) %}{{ (range(10000)|list|sort)[0] }}{% endfor %}"
ATTACKS = [
    pytest.param("{{ 'x' * 999999999 }}", "template_too_large", "prompts.max_render_chars", id="repeat"),
    pytest.param("{{ 'x'|center(999999999) }}", "template_too_large", "prompts.max_render_chars", id="center"),
    pytest.param("{{ '%0999999999d' % 1 }}", "template_too_large", "prompts.max_render_chars", id="percent"),
    pytest.param("{{ 10 ** 100000000 }}", "template_too_large", "bits", id="power"),
    pytest.param(NESTED_RANGES, "template_too_large", "prompts.max_render_chars", id="nested-ranges"),
    pytest.param(EMPTY_NESTED_RANGES, "template_too_large", "prompts.max_render_steps", id="empty-nested-ranges"),
    pytest.param(
        "{% set ns = namespace(s='ab') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
        "template_too_large",
        "prompts.max_render_chars",
        id="doubling",
    ),
    pytest.param(
        "{% set ns = namespace(l=[1]) %}{% for i in range(80) %}{% set ns.l = [ns.l, ns.l] %}{% endfor %}"
        "{{ ns.l == ns.l|list }}",
        "template_too_large",
        "prompts.max_render_chars",
        id="shared-references",
    ),
    pytest.param("{{ range(10**12)|list|length }}", "template_too_large", "range()", id="huge-range"),
]


async def _timed(
    server: Server, call: Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]
) -> tuple[httpx.Response, float, float]:
    """``call``'s response and duration, and the slowest ``/healthz`` answer while it ran."""
    async with httpx.AsyncClient(base_url=server.base_url, headers=server.admin_headers, timeout=120) as http:
        await http.get("/healthz")  # the poller's connection is open before the clock starts
        done = asyncio.Event()

        async def poll() -> float:
            worst = 0.0
            while not done.is_set():
                started = time.perf_counter()
                assert (await http.get("/healthz")).status_code == 200
                worst = max(worst, time.perf_counter() - started)
                await asyncio.sleep(0.02)
            return worst

        poller = asyncio.create_task(poll())
        await asyncio.sleep(0.05)
        started = time.perf_counter()
        response = await call(http)
        took = time.perf_counter() - started
        done.set()
        return response, took, await poller


def _publish(server: Server, content: str, variables: dict[str, Any] | None = None) -> str:
    body = spec(unique(), content)
    if variables is not None:
        body["variables"] = variables
    started = time.perf_counter()
    response = publish(server, body)
    assert response.status_code == 201, response.text
    assert time.perf_counter() - started < QUICK_S, "publishing never runs what the template computes"
    return str(body["name"])


def _render(name: str, variables: dict[str, Any]) -> Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]:
    return lambda http: http.post(f"/api/prompts/{name}/render", json={"variables": variables})


@pytest.mark.parametrize(("content", "code", "limit"), ATTACKS)
async def test_a_template_over_its_budget_answers_400_quickly(
    prompt_server: Server, content: str, code: str, limit: str
) -> None:
    name = _publish(prompt_server, content)
    response, took, health = await _timed(prompt_server, _render(name, {"topic": "x"}))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == code and limit in error["message"] and f"{name}@1 template[1]" in error["message"]
    assert took < QUICK_S and health < HEALTH_S, (took, health)


async def test_a_slow_template_times_out_and_the_loop_keeps_serving(prompt_server: Server) -> None:
    name = _publish(prompt_server, SLOW_SORTS)
    response, took, health = await _timed(prompt_server, _render(name, {"topic": "x"}))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "template_timeout" and "prompts.render_timeout_s" in error["message"]
    assert 0.9 < took < 1 + QUICK_S and health < HEALTH_S, (took, health)


async def test_a_backtracking_pattern_is_checked_in_linear_time(prompt_server: Server) -> None:
    # '^(a+)+$' took 3.9 s on 27 characters with Python's re, blocking the event loop.
    variables = {
        "type": "object",
        "required": ["topic"],
        "properties": {"topic": {"type": "string", "pattern": "^(a+)+$"}, "count": {"type": "integer", "default": 3}},
        "patternProperties": {"^(b+)+$": {"type": "integer"}},
    }
    name = _publish(prompt_server, "Write about {{ topic }}.", variables)
    for topic in ("a" * 27 + "!", "a" * 100_000 + "!"):
        response, took, health = await _timed(prompt_server, _render(name, {"topic": topic}))
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["code"] == "invalid_prompt_variables" and "does not match '^(a+)+$'" in error["message"]
        assert took < QUICK_S and health < HEALTH_S, (took, health)
    fine = prompt_server.api("POST", f"/api/prompts/{name}/render", json={"variables": {"topic": "aaaa"}})
    assert fine.status_code == 200 and fine.json()["messages"][-1]["content"] == "Write about aaaa."


def test_a_pattern_re2_cannot_run_is_refused_at_publish(prompt_server: Server) -> None:
    for pattern in ("^(?=a)a+$", "^(a)\\1$"):
        body = spec(unique())
        body["variables"]["properties"]["topic"]["pattern"] = pattern
        response = publish(prompt_server, body)
        assert response.status_code == 400, response.text
        message = response.json()["error"]["message"]
        assert repr(pattern) in message and "RE2" in message and "variables" in message


def test_unique_items_of_many_objects_is_checked_in_linear_time(prompt_server: Server) -> None:
    variables = {
        "type": "object",
        "properties": {
            "topic": {"type": "array", "uniqueItems": True, "items": {"type": "object"}},
            "count": {"type": "integer", "default": 3},
        },
    }
    name = _publish(prompt_server, "{{ topic|length }} items", variables)
    items = [{"n": i} for i in range(20_000)]
    started = time.perf_counter()
    path = f"/api/prompts/{name}/render"
    fine = prompt_server.api("POST", path, json={"variables": {"topic": items}})
    assert fine.status_code == 200 and fine.json()["messages"][-1]["content"] == "20000 items", fine.text
    twice = prompt_server.api("POST", path, json={"variables": {"topic": [*items, {"n": 7.0}]}})
    assert twice.status_code == 400 and "non-unique" in twice.json()["error"]["message"]
    assert time.perf_counter() - started < 2 * QUICK_S


async def test_a_chat_request_naming_the_prompt_gets_the_same_400(prompt_server: Server) -> None:
    name = _publish(prompt_server, NESTED_RANGES)
    body = {"model": "auto", "messages": [], "prompt": {"name": name, "variables": {"topic": "x"}}}
    response, took, health = await _timed(prompt_server, lambda http: http.post("/v1/chat/completions", json=body))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "template_too_large"
    assert took < QUICK_S and health < HEALTH_S, (took, health)


def test_ordinary_templates_still_render(prompt_server: Server) -> None:
    content = (
        "{% set ns = namespace(total=0) %}{% for i in range(topic|length) %}{% set ns.total = ns.total + i %}"
        "{% endfor %}{{ ns.total }} {{ 'ab' * 3 }} {{ '%s-%03d' % (topic, count) }} {{ '{}!'.format(topic) }} "
        "{{ [topic, count]|tojson }} {{ topic|center(9)|trim }} {{ {'k': topic}.k ~ topic }}"
    )
    name = _publish(prompt_server, content)
    variables = {"topic": "登录", "count": 7}
    response = prompt_server.api("POST", f"/api/prompts/{name}/render", json={"variables": variables})
    assert response.status_code == 200, response.text
    assert response.json()["messages"][-1]["content"] == '1 ababab 登录-007 登录! ["登录", 7] 登录 登录登录'
