"""``automation.generate`` end to end: the validator, live servers, review, restarts and crashes at every step."""

from __future__ import annotations

import asyncio
import copy
import json
import random
import secrets
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any, cast

import pytest
import redis.asyncio
import yaml
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from agents.automation import check_review, check_text, infer_target, validate_body
from agents.automation.workflow import AutomationFlow
from agents.llm import LLMFailure
from agents.tasks.kinds import TaskError, TransientError
from core.db import Base
from core.errors import InvalidRequest
from tests.agents.answers import LOGIN_ZH, valid_answer
from tests.agents.conftest import events, task_config, wait_task
from tests.conftest import (
    REPO,
    PostgresDatabases,
    Server,
    ServerFactory,
    gateway_config,
    start_server,
    start_worker,
)
from tests.fakes.llm_upstream import FakeUpstream, Reply

SCHEMA: dict[str, Any] = yaml.safe_load((REPO / "prompts" / "automation.generate.yaml").read_text())["response_schema"]
STEPS = [
    ("load_case", 5),
    ("retrieve_context", 12),
    ("choose_target", 20),
    ("render_prompt", 28),
    ("generate", 40),
    ("parse", 50),
    ("validate", 60),
    ("normalize", 70),
    ("human_review", 80),
]
LOGIN_CASE = {
    "title": "正确的用户名和密码可以登录",
    "module": "登录",
    "preconditions": ["已注册用户 alice"],
    "steps": [
        {"action": "打开登录页，输入用户名 alice 和密码 Abc12345", "expected": "输入成功"},
        {"action": "点击登录", "expected": "跳转到首页"},
    ],
    "priority": "P0",
    "type": "functional",
}
ORDER_CASE = {
    "title": "Create an order",
    "steps": [
        "POST /api/orders with sku A1 and qty 1; expect 201 Created with the order id",
        {"action": "read the order back", "expected": "status 200 and sku A1"},
    ],
}
BROWSER_BODY: dict[str, Any] = {
    "kind": "browser",
    "name": "登录成功",
    "data": {"user": "alice", "password": "Abc12345"},
    "steps": [
        {"action": "goto", "description": "打开登录页", "url": "/login"},
        {
            "action": "fill",
            "description": "输入用户名",
            "locator": {"strategy": "testid", "value": "username"},
            "value": "{{data.user}}",
        },
        {
            "action": "fill",
            "description": "输入密码",
            "locator": {"strategy": "label", "value": "密码"},
            "value": "{{data.password}}",
        },
        {
            "action": "click",
            "description": "点击登录",
            "locator": {"strategy": "role", "value": "button", "name": "登录"},
            "fallbacks": [{"strategy": "css", "value": "form button[type=submit]"}],
        },
        {"action": "expect_url", "description": "跳转首页", "value": "/home"},
    ],
}
API_BODY: dict[str, Any] = {
    "kind": "api",
    "name": "create order",
    "requests": [
        {
            "name": "create",
            "method": "POST",
            "path": "/api/orders",
            "json": {"sku": "A1", "qty": 1},
            "expect": {"status": 201, "json_contains": {"qty": 1}},
            "extract": {"order_id": "$.id"},
        },
        {
            "name": "read",
            "method": "GET",
            "path": "/api/orders/{{order_id}}",
            "expect": {"status": 200, "json_contains": {"sku": "A1"}},
        },
    ],
}


def browser(**changes: Any) -> dict[str, Any]:
    return {**copy.deepcopy(BROWSER_BODY), **changes}


# --- the validator, directly ---------------------------------------------------------------------------
def test_valid_bodies_pass_with_locator_tiers_and_warnings() -> None:
    result = validate_body(BROWSER_BODY, SCHEMA, "browser")
    assert result["valid"], result
    assert result["locator_tiers"] == {"gold": 1, "silver": 2, "bronze": 0}
    assert any("steps[3].fallbacks[0]" in w and "bronze" in w for w in result["warnings"])
    api = validate_body(API_BODY, SCHEMA, "api")
    assert api == {"valid": True, "errors": [], "warnings": [], "locator_tiers": {"gold": 0, "silver": 0, "bronze": 0}}


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (lambda b: b["steps"][3].pop("locator"), "steps[3].locator: action 'click' needs a locator"),
        (lambda b: b["steps"][0].pop("url"), "steps[0].url: action 'goto' needs a url"),
        (lambda b: b["steps"][1].pop("value"), "steps[1].value: action 'fill' needs a value"),
        (lambda b: b["steps"][4].pop("value"), "steps[4].value: action 'expect_url' needs"),
        (lambda b: b["steps"][0].update(action="teleport"), "steps[0].action: 'teleport' is not one of"),
        (lambda b: b["steps"][1]["locator"].update(strategy="magic"), "steps[1].locator.strategy:"),
        (lambda b: b["steps"][2].update(colour="red"), "steps[2]: Additional properties are not allowed"),
        (lambda b: b.pop("steps"), "$: 'steps' is a required property"),
        (lambda b: b.update(kind="api"), "kind: must be 'browser' (the chosen target), got 'api'"),
    ],
)
def test_browser_errors_name_their_path(change: Any, error: str) -> None:
    body = browser()
    change(body)
    result = validate_body(body, SCHEMA, "browser")
    assert not result["valid"]
    assert any(e.startswith(error) for e in result["errors"]), result["errors"]


def test_api_paths_must_be_relative_or_absolute_http() -> None:
    body = copy.deepcopy(API_BODY)
    body["requests"][0]["path"] = "api/orders"
    body["requests"][1]["path"] = "https://shop.example.com/api/orders/{{order_id}}"
    result = validate_body(body, SCHEMA, "api")
    assert result["errors"] == [
        "requests[0].path: 'api/orders' must start with '/' (under base_url) or be an absolute http(s) URL"
    ]
    body["requests"][1]["expect"] = {"status": 99}
    assert (
        "requests[1].expect.status: 99 is less than the minimum of 100" in validate_body(body, SCHEMA, "api")["errors"]
    )


def test_parsing_tolerates_fences_and_prose_and_reports_garbage() -> None:
    fenced = "Here it is:\n```json\n" + json.dumps(API_BODY) + "\n```\nDone."
    assert check_text(fenced, SCHEMA, "api") == (API_BODY, validate_body(API_BODY, SCHEMA, "api"))
    body, result = check_text("I cannot do that.", SCHEMA, "api")
    assert body is None and result["errors"][0].startswith("$: not valid JSON")
    assert check_text("[1, 2]", SCHEMA, "api")[1]["errors"][0].startswith("$: expected a JSON object")


@pytest.mark.parametrize(
    ("case", "target"),
    [
        (LOGIN_CASE, "browser"),
        (ORDER_CASE, "api"),
        ({"title": "查询订单接口", "steps": ["调用查询接口"]}, "api"),
        ({"title": "Login", "steps": ["submit the form", "the API answers status 401"]}, "api"),
        ({"title": "Get a coffee", "steps": ["get the cup, post it to a friend"]}, "browser"),
    ],
)
def test_target_inference(case: dict[str, Any], target: str) -> None:
    assert infer_target(case)[0] == target


def test_check_review_refuses_an_invalid_correction() -> None:
    interrupt = {"target": "browser", "response_schema": SCHEMA}
    bad = browser()
    del bad["steps"][3]["locator"]
    with pytest.raises(InvalidRequest) as refused:
        check_review({"action": "corrected", "corrected_body": bad}, {}, interrupt)
    assert "steps[3].locator" in refused.value.message and refused.value.param == "corrected_body"
    check_review({"action": "corrected", "corrected_body": json.dumps(browser())}, {}, interrupt)
    check_review({"action": "approved", "feedback": "ok", "corrected_body": None}, {}, interrupt)


@pytest.mark.parametrize(
    ("reason", "raised", "type_"),
    [
        ("budget", TaskError, "budget_exceeded"),
        ("unavailable", TransientError, None),
        ("invalid_request", TaskError, "llm_invalid_request"),
    ],
)
async def test_model_failures_map_to_task_errors(reason: str, raised: type[Exception], type_: str | None) -> None:
    async def complete(*args: Any, **kwargs: Any) -> None:
        raise LLMFailure(reason, f"scripted {reason}", 429, None)  # type: ignore[arg-type]

    services = cast(Any, SimpleNamespace(llm=SimpleNamespace(complete=complete)))
    flow = AutomationFlow(services, cast(Any, None))
    with pytest.raises(raised) as failure:
        await flow._complete(cast(Any, None), "generate", prompt={"name": "automation.generate"})
    assert getattr(failure.value, "type", None) == type_
    assert f"scripted {reason}" in str(failure.value)


# --- live: embedded server ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
async def auto(fake: FakeUpstream, server_factory: ServerFactory) -> Server:
    return await asyncio.to_thread(server_factory, {**gateway_config(fake), **task_config()})


def project_key(server: Server) -> str:
    return server.new_key(f"auto-{secrets.token_hex(4)}")


def submit(server: Server, key: str, **task_input: Any) -> str:
    task_input.setdefault("case", LOGIN_CASE)
    task_input = {k: v for k, v in task_input.items() if v is not None}
    response = server.api("POST", "/api/tasks", key=key, json={"kind": "automation.generate", "input": task_input})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def review(server: Server, key: str, task_id: str, expect: int = 200, **decision: Any) -> dict[str, Any]:
    response = server.api("POST", f"/api/tasks/{task_id}/review", key=key, json=decision)
    assert response.status_code == expect, response.text
    return dict(response.json())


def generate_calls(fake: FakeUpstream) -> list[dict[str, Any]]:
    """Requests that rendered automation.generate (not its repair)."""
    marks = ("测试自动化工程师", "test automation engineer")
    return [r for r in fake.requests if any(m in str(r["messages"][0]["content"]) for m in marks)]


async def reviewing(server: Server, key: str, task_id: str, timeout: float = 20) -> dict[str, Any]:
    task = await wait_task(server, key, task_id, "reviewing", "failed", "succeeded", timeout=timeout)
    assert task["status"] == "reviewing", (task["error"], task["attempts"], task["current_step"])
    return task


async def test_approved_browser_case(auto: Server, fake: FakeUpstream) -> None:
    key = project_key(auto)
    doc = auto.api(
        "POST",
        "/api/kb/documents",
        key=key,
        json={"text": "登录页：用户名输入框 data-testid=login-user，登录按钮文字为「登录」。", "source": "pages.md"},
    )
    assert doc.status_code == 201, doc.text
    fake.script("qwen-plus", Reply(content="```json\n" + json.dumps(BROWSER_BODY, ensure_ascii=False) + "\n```"))
    task_id = submit(auto, key, base_url="https://shop.example.com", name="登录-自动化")
    task = await reviewing(auto, key, task_id)
    assert (task["progress"], task["current_step"], task["need_review"]) == (80, "human_review", True)
    data = task["interrupt_data"]
    expected = {**BROWSER_BODY, "name": "登录-自动化", "base_url": "https://shop.example.com"}
    assert data["generated_body"] == expected
    assert data["validation_result"]["valid"] and data["validation_result"]["locator_tiers"]["gold"] == 1
    assert data["target"] == "browser" and data["case"] == {"id": None, "title": LOGIN_CASE["title"]}
    assert data["prompt"]["name"] == "automation.generate" and data["prompt"]["version"] >= 1
    assert data["regenerations"] == 0
    sent = generate_calls(fake)
    assert len(sent) == 1
    assert sent[0]["response_format"]["type"] == "json_schema"
    assert "login-user" in json.dumps(sent[0]["messages"], ensure_ascii=False), "the KB page notes reach the prompt"
    progress = [(e["data"]["step"], e["data"]["progress"]) for e in await events(auto, task_id, "task_progress")]
    assert progress == STEPS
    assert len(await events(auto, task_id, "task_need_review")) == 1

    review(auto, key, task_id, action="approved", feedback="看起来不错")
    done = await wait_task(auto, key, task_id, "succeeded", "failed")
    result = done["result"]
    assert done["status"] == "succeeded" and done["progress"] == 100, done
    assert result["review"] == {"action": "approved", "feedback": "看起来不错"}
    assert result["target"] == "browser" and result["created_case"]["body"] == expected
    case_id = result["automation_case_id"]
    stored = auto.api("GET", f"/api/automation/cases/{case_id}", key=key).json()
    assert stored["body"] == expected and stored["task_id"] == task_id and stored["review_action"] == "approved"
    assert stored["prompt"] == data["prompt"]
    listed = auto.api("GET", "/api/automation/cases?target=browser&limit=5", key=key).json()
    assert listed["total"] == 1 and listed["items"][0]["id"] == case_id
    assert auto.api("GET", "/api/automation/cases?target=api", key=key).json()["total"] == 0
    assert auto.api("GET", f"/api/automation/cases/{case_id}", key=project_key(auto)).status_code == 404
    assert auto.api("GET", "/api/automation/cases?target=ios", key=key).status_code == 400
    assert len(generate_calls(fake)) == 1


async def test_api_target_is_inferred_and_corrections_are_validated(auto: Server, fake: FakeUpstream) -> None:
    key = project_key(auto)
    fake.script("qwen-plus", Reply(content=json.dumps(API_BODY)))
    task_id = submit(auto, key, case=ORDER_CASE, language="en", base_url="https://api.example.com")
    task = await reviewing(auto, key, task_id)
    assert task["interrupt_data"]["target"] == "api"
    assert "test automation engineer" in generate_calls(fake)[0]["messages"][0]["content"]

    wrong = copy.deepcopy(API_BODY)
    wrong["requests"][0]["path"] = "orders"
    refused = auto.api(
        "POST", f"/api/tasks/{task_id}/review", key=key, json={"action": "corrected", "corrected_body": wrong}
    )
    assert refused.status_code == 400 and "requests[0].path" in refused.json()["error"]["message"], refused.text
    assert auto.api("GET", f"/api/tasks/{task_id}", key=key).json()["status"] == "reviewing"

    fixed = copy.deepcopy(API_BODY)
    fixed["requests"][1]["expect"]["max_ms"] = 500
    review(auto, key, task_id, action="approved", corrected_body=fixed)
    done = await wait_task(auto, key, task_id, "succeeded", "failed")
    assert done["status"] == "succeeded", done
    assert done["result"]["review"]["action"] == "corrected"
    stored = auto.api("GET", f"/api/automation/cases/{done['result']['automation_case_id']}", key=key).json()
    assert stored["body"]["requests"][1]["expect"]["max_ms"] == 500 and stored["target"] == "api"
    assert stored["body"]["base_url"] == "https://api.example.com"


async def test_rejection_with_feedback_regenerates_once(auto: Server, fake: FakeUpstream) -> None:
    key = project_key(auto)
    second = browser(name="登录成功（按意见）")
    fake.script("qwen-plus", Reply(content=json.dumps(BROWSER_BODY)), Reply(content=json.dumps(second)))
    task_id = submit(auto, key)
    await reviewing(auto, key, task_id)
    review(auto, key, task_id, action="rejected", feedback="用 data-testid 定位登录按钮")
    task = await reviewing(auto, key, task_id)
    assert task["interrupt_data"]["regenerations"] == 1
    assert task["interrupt_data"]["generated_body"]["name"] == "登录成功（按意见）"
    sent = generate_calls(fake)
    assert len(sent) == 2
    assert "用 data-testid 定位登录按钮" in sent[1]["messages"][-1]["content"]
    assert sent[1]["messages"][-1]["role"] == "user"
    review(auto, key, task_id, action="approved")
    done = await wait_task(auto, key, task_id, "succeeded", "failed")
    assert done["status"] == "succeeded" and done["result"]["regenerations"] == 1, done
    assert done["result"]["created_case"]["name"] == "登录成功（按意见）"
    assert len(generate_calls(fake)) == 2
    assert len(await events(auto, task_id, "task_need_review")) == 2


@pytest.mark.parametrize("feedback", [["太简单了", "还是不行"], [None]])
async def test_second_rejection_or_no_feedback_fails(auto: Server, fake: FakeUpstream, feedback: list[Any]) -> None:
    key = project_key(auto)
    fake.script("qwen-plus", *(Reply(content=json.dumps(BROWSER_BODY)) for _ in feedback))
    task_id = submit(auto, key)
    for text in feedback:
        await reviewing(auto, key, task_id)
        review(auto, key, task_id, action="rejected", feedback=text)
    failed = await wait_task(auto, key, task_id, "failed", "succeeded")
    assert failed["status"] == "failed" and failed["error"]["type"] == "rejected_by_reviewer", failed
    assert len(generate_calls(fake)) == len(feedback)


async def test_garbage_is_repaired(auto: Server, fake: FakeUpstream) -> None:
    key = project_key(auto)
    fake.script("qwen-plus", Reply(content="好的，这是测试：{kind: browser,"), Reply(content=json.dumps(BROWSER_BODY)))
    task_id = submit(auto, key)
    task = await reviewing(auto, key, task_id)
    assert task["interrupt_data"]["validation_result"]["valid"]
    repair = fake.requests[1]
    assert "{kind: browser," in repair["messages"][-1]["content"]
    assert repair["response_format"]["json_schema"]["schema"] == SCHEMA
    assert len(generate_calls(fake)) == 1


async def test_invalid_output_everywhere_fails(auto: Server, fake: FakeUpstream) -> None:
    key = project_key(auto)
    fake.script("qwen-plus", *(Reply(content='{"kind": "browser"}') for _ in range(3)))
    failed = await wait_task(auto, key, submit(auto, key), "failed", "reviewing", "succeeded")
    assert failed["status"] == "failed" and failed["error"]["type"] == "invalid_output", failed
    assert "steps" in failed["error"]["message"]
    assert len(fake.requests) == 3  # generate, repair, escalate


async def test_missing_case_and_bad_input(auto: Server, fake: FakeUpstream) -> None:
    key = project_key(auto)
    response = auto.api("POST", "/api/tasks", key=key, json={"kind": "automation.generate", "input": {}})
    assert response.status_code == 400 and "testcase_id" in response.text
    both = {"kind": "automation.generate", "input": {"testcase_id": "x", "case": LOGIN_CASE}}
    assert auto.api("POST", "/api/tasks", key=key, json=both).status_code == 400
    missing = auto.api(
        "POST", "/api/tasks", key=key, json={"kind": "automation.generate", "input": {"testcase_id": "nope"}}
    )
    assert missing.status_code == 400, missing.text  # refused at submit: no task that could only fail
    assert missing.json()["error"]["code"] == "testcase_not_found"
    assert missing.json()["error"]["param"] == "input.testcase_id" and "'nope'" in missing.text
    assert fake.requests == []


async def test_stored_cases_must_be_accepted(auto: Server, fake: FakeUpstream) -> None:
    key = project_key(auto)
    step = {"step": 1, "action": "POST /api/orders 提交 sku A1", "data": "", "expected": "返回 201 和订单号"}
    other = {"step": 1, "action": "库存为 0 时提交订单", "data": "sku B9", "expected": "提示库存不足，不生成订单"}
    case = {"module": "订单", "preconditions": [], "steps": [step], "priority": "P1", "type": "functional"}
    answer = {
        "requirement_points": [{"id": "R1", "text": "下单接口返回订单号"}],
        "cases": [
            {**case, "title": "下单成功", "covers": ["R1"]},
            {**case, "title": "库存不足时下单失败", "steps": [other], "type": "negative", "covers": ["R1"]},
        ],
        "open_questions": [],
    }
    fake.script("qwen-plus", Reply(content=json.dumps(answer, ensure_ascii=False)), Reply(content=json.dumps(API_BODY)))
    requirement = {"requirement": "下单接口：POST /api/orders 必须返回订单号。", "use_knowledge": False}
    generated = auto.api("POST", "/api/tasks", key=key, json={"kind": "testcase.generate", "input": requirement})
    finished = await wait_task(auto, key, generated.json()["id"], "succeeded", "failed")
    accepted, pending = (c["id"] for c in finished["result"]["cases"])
    assert auto.api("POST", f"/api/testcases/{accepted}/review", key=key, json={"action": "accept"}).is_success
    task = await reviewing(auto, key, submit(auto, key, case=None, testcase_id=accepted))
    assert task["interrupt_data"]["case"] == {"id": accepted, "title": "下单成功"}
    assert task["interrupt_data"]["target"] == "api"
    body = {"kind": "automation.generate", "input": {"testcase_id": pending, "language": "zh"}}
    refused = auto.api("POST", "/api/tasks", key=key, json=body)
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "testcase_not_accepted", refused.text
    assert f"/api/testcases/{pending}/review" in refused.json()["error"]["message"]
    stranger = auto.new_key(f"other-{secrets.token_hex(4)}")  # another project's accepted case is "not found"
    foreign = {"kind": "automation.generate", "input": {"testcase_id": accepted}}
    elsewhere = auto.api("POST", "/api/tasks", key=stranger, json=foreign)
    assert elsewhere.status_code == 400 and elsewhere.json()["error"]["code"] == "testcase_not_found", elsewhere.text


async def test_budget_block_fails_the_task(auto: Server, fake: FakeUpstream) -> None:
    project = f"auto-{secrets.token_hex(4)}"
    key = auto.new_key(project)
    budget = {"project": project, "limit_tokens": 10, "period": "day", "action": "block"}
    assert auto.api("PUT", "/api/budgets", json=budget).status_code in (200, 201)
    failed = await wait_task(auto, key, submit(auto, key), "failed", "reviewing", "succeeded")
    assert failed["error"]["type"] == "budget_exceeded" and failed["error"]["hint"], failed
    assert fake.requests == []


# --- durability: restarts and crashes ----------------------------------------------------------------
async def test_review_survives_a_server_restart(auto: Server, fake: FakeUpstream) -> None:
    """Stops the module's server (so it runs last of the ``auto`` tests) and starts another on its data."""
    key = project_key(auto)
    fake.script("qwen-plus", Reply(content=json.dumps(BROWSER_BODY)))
    task_id = submit(auto, key)
    await reviewing(auto, key, task_id)
    auto.stop()
    config = yaml.safe_load((auto.log_path.parent / "aitp.yaml").read_text())
    server = await asyncio.to_thread(
        start_server, auto.log_path.parent, config, auto.database_url, launcher=auto.launcher
    )
    try:
        task = await reviewing(server, key, task_id)
        assert task["interrupt_data"]["generated_body"]["steps"] == BROWSER_BODY["steps"]
        review(server, key, task_id, action="approved")
        done = await wait_task(server, key, task_id, "succeeded", "failed")
        assert done["status"] == "succeeded", done
        assert server.api("GET", f"/api/automation/cases/{done['result']['automation_case_id']}", key=key).is_success
        assert len(generate_calls(fake)) == 1
    finally:
        server.stop()


@pytest.fixture(scope="module")
async def chaos_cluster(
    fake: FakeUpstream, server_factory: ServerFactory, pg_databases: PostgresDatabases
) -> AsyncIterator[Server]:
    env = {
        "AITP_REDIS_URL": f"redis://127.0.0.1:6379/{random.randint(1, 15)}",
        "AITP_REDIS_PREFIX": "aitp-test-" + secrets.token_hex(4),
    }
    tasks = task_config(
        lease_s=2,
        heartbeat_s=0.4,
        reaper_interval_s=0.3,
        max_attempts=20,
        crash_after_checkpoint_kinds=["automation.generate", "testcase.generate"],
    )
    config = {**gateway_config(fake), **tasks}
    server = await asyncio.to_thread(server_factory, config, await pg_databases.create(), extra_env=env)
    yield server
    server.stop()
    client = redis.asyncio.Redis.from_url(env["AITP_REDIS_URL"])
    async for key in client.scan_iter(match=env["AITP_REDIS_PREFIX"] + "*"):
        await client.delete(key)
    await client.aclose()


@pytest.mark.serial  # kills and restarts workers on a clock: run alone
async def test_a_worker_killed_after_every_step_resumes_and_never_repeats_the_model_call(
    chaos_cluster: Server, fake: FakeUpstream
) -> None:
    fake.script("qwen-plus", Reply(content=json.dumps(BROWSER_BODY)), Reply(content=valid_answer("zh")))
    worker = await asyncio.to_thread(start_worker, chaos_cluster, "--processes", "2", "--threads", "2")
    try:
        key = project_key(chaos_cluster)
        task_id = submit(chaos_cluster, key)
        task = await reviewing(chaos_cluster, key, task_id, timeout=45)
        assert task["interrupt_data"]["generated_body"]["name"] == BROWSER_BODY["name"]
        # While it waits for review, a test-case generation goes through the same killing.
        body = {"kind": "testcase.generate", "input": {"requirement": LOGIN_ZH}}
        generation = chaos_cluster.api("POST", "/api/tasks", key=key, json=body).json()
        generated = await wait_task(chaos_cluster, key, generation["id"], "succeeded", "failed", timeout=60)
        review(chaos_cluster, key, task_id, action="approved")
        done = await wait_task(chaos_cluster, key, task_id, "succeeded", "failed", timeout=30)
    finally:
        worker.kill()
    assert done["status"] == "succeeded", done
    assert len(generate_calls(fake)) == 1, "a finished generate step is never called again"
    assert generated["status"] == "succeeded", generated
    assert generated["result"]["source"] == "llm" and generated["result"]["case_count"] == 2
    testcase_calls = [r for r in fake.requests if "资深软件测试工程师" in str(r["messages"][0]["content"])]
    assert len(testcase_calls) == 1, "a finished call_llm step is never called again"
    restarts = await events(chaos_cluster, generation["id"], "task_started")
    assert len(restarts) >= 8, "each execution should have finished exactly one step"
    stored = await chaos_cluster.rows("SELECT count(*) AS n FROM testcases WHERE task_id = :t", t=generation["id"])
    assert stored[0]["n"] == 2
    started = await events(chaos_cluster, task_id, "task_started")
    assert len(started) >= 10, "each execution should have finished exactly one step"
    cases = await chaos_cluster.rows("SELECT id FROM automation_cases WHERE task_id = :t", t=task_id)
    assert [c["id"] for c in cases] == [done["result"]["automation_case_id"]]


def _automation_diffs(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return [d for d in compare_metadata(context, Base.metadata) if "automation_cases" in repr(d)]


async def test_migration_matches_the_table(chaos_cluster: Server) -> None:
    engine = create_async_engine(chaos_cluster.database_url)
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(_automation_diffs) == []
    finally:
        await engine.dispose()
