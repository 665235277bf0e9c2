"""Specs: validation that names the field, the planner's and the automation workflow's shapes, masking, export."""

from __future__ import annotations

import ast
from typing import Any

import pytest

from agents.browser.export import to_pytest
from agents.browser.spec import parse_spec
from core.errors import InvalidRequest
from tests.agents.automation.test_automation import BROWSER_BODY


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"steps": []}, "spec.steps"),
        ({"steps": [{"action": "click"}]}, "needs a target"),
        ({"steps": [{"action": "fill", "target": {"testid": "a"}}]}, "needs a value"),
        ({"steps": [{"action": "click", "target": {"testid": "a", "css": "b"}}]}, "exactly one"),
        ({"steps": [{"action": "click", "target": {"css": "b", "name": "x"}}]}, "'name' goes with 'role'"),
        ({"steps": [{"action": "goto", "url": "/{{missing}}"}]}, "neither a variable nor a secret"),
        ({"steps": [{"action": "teleport"}]}, "spec.steps[0].action"),
        ({"files": {"../x": "y"}, "steps": [{"action": "goto", "url": "/"}]}, "plain file name"),
        ({"steps": [{"action": "goto", "url": "/"}], "shell": "rm"}, "spec.shell"),
        ("steps: [", "neither valid JSON nor YAML"),
    ],
)
def test_bad_specs_name_the_problem(spec: Any, message: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_spec(spec)
    assert message in caught.value.message or message == caught.value.param, caught.value.message


def test_yaml_planner_shape_and_secrets() -> None:
    spec = parse_spec(
        """
name: 登录
base_url: https://app.example.com
secrets: {password: s3cret-value}
steps:
  - {action: goto, value: /login}
  - action: fill
    locator: {tier: gold, strategy: testid, value: pwd}
    fallbacks: [{tier: silver, strategy: label, value: 密码}]
    value: "{{password}}"
  - {action: expect_url, url: /home}
"""
    )
    assert spec.steps[0].url == "/login" and spec.steps[2].value == "/home"
    assert [loc.tier for loc in spec.steps[1].target] == ["gold", "silver"]
    assert spec.substitute("{{password}}") == "s3cret-value"
    assert spec.mask("typed s3cret-value") == "typed ***"
    assert spec.public()["secrets"] == {"password": "***"}


def test_automation_bodies_run_as_specs() -> None:
    spec = parse_spec({**BROWSER_BODY, "base_url": "https://shop.example.com"})
    assert spec.substitute(spec.steps[1].value or "") == "alice"
    assert [s.action for s in spec.steps] == ["goto", "fill", "fill", "click", "expect_url"]
    assert spec.steps[3].target[1].css == "form button[type=submit]"


def test_export_is_valid_python_without_secrets() -> None:
    spec = parse_spec({**BROWSER_BODY, "base_url": "https://shop.example.com", "secrets": {"token": "t0ps3cret"}})
    text = to_pytest(spec, "test_login.py", 2.0)
    ast.parse(text)
    assert "t0ps3cret" not in text and "AITP_SECRET_" in text
    assert 'find(page, [{"role": "button", "name": "登录"}, {"css": "form button[type=submit]"}]).click()' in text
