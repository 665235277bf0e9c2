"""The prompts shipped in prompts/: they load, render in Chinese and English, and state their output schema."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from tests.conftest import Server

CASE = {
    "title": "锁定后登录被拒绝",
    "module": "登录",
    "preconditions": ["账号 alice 已因 5 次密码错误被锁定"],
    "steps": [{"step": 1, "action": "用正确密码登录 alice", "expected": "提示“账号已锁定 请 30 分钟后重试”"}],
    "priority": "P0",
    "type": "negative",
    "covers": ["R3"],
}
SAMPLES: dict[str, dict[str, Any]] = {
    "testcase.generate": {
        "requirement": "用户名 4-20 位字母数字。密码错误 5 次锁定 30 分钟。锁定期间提示剩余时间。",
        "module": "登录",
        "context": [{"source": "prd/login.md#lock", "text": "锁定计时从第 5 次失败开始。"}],
        "case_types": ["functional", "boundary", "security"],
        "max_cases": 8,
    },
    "testcase.repair": {
        "invalid_output": "```json\n{'cases': [{'title': 'x',}]}\n```",
        "errors": ["$: the answer is not JSON", "$.cases[0]: 'steps' is a required property"],
        "schema": {"type": "object", "required": ["cases"]},
        "task": "登录模块的测试用例",
    },
    "automation.generate": {"case": CASE, "target": "browser", "base_url": "https://staging.example.com"},
    "browser.plan": {
        "goal": "以 alice 登录并打开订单列表",
        "page": {
            "url": "https://staging.example.com/login",
            "title": "登录",
            "elements": [
                {"testid": "login-username", "role": "textbox", "label": "用户名"},
                {"role": "button", "name": "登录"},
            ],
        },
        "test_data": {"username": "alice", "password": "not-sent-to-the-model"},
    },
}


@pytest.mark.parametrize("name", sorted(SAMPLES))
@pytest.mark.parametrize("language", ["zh", "en"])
def test_shipped_prompts_render(gateway: Server, name: str, language: str) -> None:
    response = gateway.api(
        "POST", f"/api/prompts/{name}/render", json={"variables": {**SAMPLES[name], "language": language}}
    )
    assert response.status_code == 200, response.text
    rendered = response.json()
    roles = [m["role"] for m in rendered["messages"]]
    assert roles == ["system", "user"]
    text = "\n".join(m["content"] for m in rendered["messages"])
    if language == "en":
        assert "You " in rendered["messages"][0]["content"]
    else:
        assert "你" in rendered["messages"][0]["content"]
    assert "{{" not in text.replace("{{data.", "").replace("{{run_id}}", "").replace("{{test_data.", "").replace(
        "{{name}}", ""
    ), "no template syntax is left over"
    assert "not-sent-to-the-model" not in text, "test data values stay out of the prompt"
    fmt = rendered["response_format"]
    if name == "testcase.repair":
        assert fmt is None, "the caller sends the schema the repaired answer must meet"
    else:
        jsonschema.Draft202012Validator.check_schema(fmt["json_schema"]["schema"])


def test_testcase_schema_accepts_a_good_answer_and_refuses_a_sloppy_one(gateway: Server) -> None:
    version = gateway.api("GET", "/api/prompts/testcase.generate").json()["latest_version"]
    schema = gateway.api("GET", f"/api/prompts/testcase.generate/versions/{version}").json()["spec"]["response_schema"]
    good = {
        "requirement_points": [{"id": "R3", "text": "锁定期间拒绝登录并提示剩余时间"}],
        "cases": [CASE],
        "open_questions": ["剩余时间按分钟还是秒显示"],
    }
    jsonschema.validate(good, schema)
    sloppy = {**good, "cases": [{**CASE, "priority": "High", "steps": []}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(sloppy, schema)


def test_automation_schema_takes_browser_or_api_specs(gateway: Server) -> None:
    version = gateway.api("GET", "/api/prompts/automation.generate").json()["latest_version"]
    schema = gateway.api("GET", f"/api/prompts/automation.generate/versions/{version}").json()["spec"][
        "response_schema"
    ]
    browser = {
        "kind": "browser",
        "name": "locked account cannot log in",
        "steps": [
            {"action": "goto", "url": "/login", "description": "open the login page"},
            {
                "action": "fill",
                "locator": {"strategy": "testid", "value": "login-username"},
                "fallbacks": [{"strategy": "label", "value": "用户名"}],
                "value": "{{data.user}}",
                "description": "type the user name",
            },
            {
                "action": "expect_text",
                "locator": {"strategy": "role", "value": "alert"},
                "value": "已锁定",
                "description": "the lock message shows",
            },
        ],
    }
    api = {
        "kind": "api",
        "name": "login is refused while locked",
        "requests": [
            {
                "name": "login",
                "method": "POST",
                "path": "/api/login",
                "json": {"username": "alice", "password": "right"},
                "expect": {"status": 423, "json_contains": {"code": "locked"}},
                "extract": {"retry": "$.retry_after"},
            }
        ],
    }
    jsonschema.validate(browser, schema)
    jsonschema.validate(api, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**browser, "kind": "api"}, schema)
