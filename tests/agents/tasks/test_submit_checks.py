"""What can be checked when a task is submitted is checked then: a 400 naming the cause, and no task stored.

The server here has no model configured (only the built-in ``local/echo``), which is what ``make run``
gives a new user: automation is refused at submit, and echo calls never touch a budget.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import pytest
from openai import OpenAI

from tests.agents.conftest import task_config
from tests.conftest import Server, ServerFactory


@pytest.fixture(scope="module")
async def echo_only(server_factory: ServerFactory) -> Server:
    return await asyncio.to_thread(server_factory, {**task_config(), "usage": {"flush_interval_s": 0.05}})


def fresh_project(server: Server) -> tuple[str, str]:
    project = f"sc-{secrets.token_hex(4)}"
    return project, server.new_key(project)


def refused(server: Server, key: str, body: dict[str, Any]) -> dict[str, Any]:
    response = server.api("POST", "/api/tasks", key=key, json=body)
    assert response.status_code == 400, response.text
    return dict(response.json()["error"])


def task_count(server: Server, key: str) -> int:
    return int(server.api("GET", "/api/tasks", key=key).json()["total"])


def test_unknown_or_foreign_document_is_refused_at_submit(echo_only: Server) -> None:
    _, key = fresh_project(echo_only)
    error = refused(echo_only, key, {"kind": "testcase.generate", "input": {"document_id": "doc_nope"}})
    assert error["code"] == "document_not_found" and error["param"] == "input.document_id"
    assert "'doc_nope'" in error["message"] and "aitp kb list" in error["message"]
    _, owner = fresh_project(echo_only)
    added = echo_only.api(
        "POST", "/api/kb/documents", key=owner, json={"text": "登录：密码 8 到 20 位。", "source": "login.md"}
    )
    assert added.status_code == 201, added.text
    document_id = added.json()["id"]
    foreign = refused(echo_only, key, {"kind": "testcase.generate", "input": {"document_id": document_id}})
    assert foreign["code"] == "document_not_found" and document_id in foreign["message"]
    assert task_count(echo_only, key) == 0
    own = echo_only.api(
        "POST", "/api/tasks", key=owner, json={"kind": "testcase.generate", "input": {"document_id": document_id}}
    )
    assert own.status_code == 201, own.text


def test_typo_in_a_field_gets_did_you_mean(echo_only: Server) -> None:
    _, key = fresh_project(echo_only)
    body = {"kind": "testcase.generate", "input": {"requirement": "登录", "max_case": 5}}
    error = refused(echo_only, key, body)
    assert error["param"] == "input.max_case"
    assert "did you mean 'max_cases'?" in error["message"], error
    top = refused(echo_only, key, {"kind": "system.sleep", "inputs": {}})
    assert top["param"] == "inputs" and "did you mean 'input'?" in top["message"], top
    far = refused(echo_only, key, {"kind": "testcase.generate", "input": {"requirement": "x", "zzz": 1}})
    assert "known fields:" in far["message"] and "document_id" in far["message"], far
    nested = {"kind": "automation.generate", "input": {"case": {"title": "t", "steps": ["a"], "modul": "m"}}}
    assert "did you mean 'module'?" in refused(echo_only, key, nested)["message"]
    assert task_count(echo_only, key) == 0


def test_automation_without_a_model_is_refused_at_submit(echo_only: Server) -> None:
    _, key = fresh_project(echo_only)
    case = {"title": "登录成功", "steps": ["输入正确的用户名和密码", "点击登录"]}
    error = refused(echo_only, key, {"kind": "automation.generate", "input": {"case": case}})
    assert error["code"] == "no_model_configured"
    assert "local/echo" in error["message"] and "models:" in error["message"]
    assert "docs/configuration.md" in error["message"]
    assert task_count(echo_only, key) == 0


async def test_echo_calls_are_recorded_but_never_charged(echo_only: Server) -> None:
    project, key = fresh_project(echo_only)
    budget = echo_only.api(
        "POST",
        "/api/budgets",
        json={"project": project, "period": "day", "limit_tokens": 1000, "limit_usd": 1.0, "action": "block"},
    )
    assert budget.status_code == 201, budget.text
    client = OpenAI(base_url=echo_only.v1, api_key=key, max_retries=0)
    for model in ("auto", "turbo", "plus"):
        answer = client.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": "长" * 600}], max_tokens=400
        )
        assert answer.headers["x-aitp-model"] == "local/echo"
    rows = await echo_only.wait_rows(
        "SELECT prompt_tokens, completion_tokens FROM usage_records WHERE project_id = :p", count=3, p=project
    )
    assert len(rows) == 3 and all(r["prompt_tokens"] > 0 for r in rows)
    status = echo_only.api("GET", f"/api/budgets/{budget.json()['id']}/status").json()["status"]
    assert status["tokens"]["used"] == 0 and status["tokens"]["reserved"] == 0, status
    assert status["usd"]["used"] == 0 and status["current_action"] == "ok", status
