"""The platform built in process without HTTP (as ``aitp mcp`` builds it): its services enforce the same rules.

One :func:`build_platform` on SQLite for the module; each test calls the
services directly with a Principal, as the MCP tools do.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import SecretStr

from agents.platform import Services, build_platform
from core.errors import Forbidden, InvalidRequest, NotFound, Unauthorized
from core.identity.principal import Principal
from core.settings import Settings
from gateway.prompts import from_data

ADMIN_KEY = "sk-aitp-test-admin-Pq7Wn2Xv9Lk4Rt6Hy3Bm8Cd5"
ROOT = Principal(key_id="admin-env", project_id="default", role="admin", root=True)
ADMIN_A = Principal(key_id="aa", project_id="plat-a", role="admin")
MEMBER_A = Principal(key_id="ma", project_id="plat-a", role="member")
VIEWER_A = Principal(key_id="va", project_id="plat-a", role="viewer")
MEMBER_B = Principal(key_id="mb", project_id="plat-b", role="member")


def prompt(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "variables": {"type": "object", "required": ["topic"], "properties": {"topic": {"type": "string"}}},
        "template": [{"role": "user", "content": "Test ideas for {{ topic }}."}],
    }


@pytest.fixture(scope="module")
async def services(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Services]:
    data = tmp_path_factory.mktemp("platform")
    settings = Settings(admin_key=SecretStr(ADMIN_KEY), data_dir=data)
    async with build_platform(settings, execute=False) as built:
        for project in ("plat-a", "plat-b"):
            await built.identity.projects.create(project, "")
        yield built


async def test_keys_resolve_to_principals(services: Services) -> None:
    assert (await services.authenticate(ADMIN_KEY)).root
    created = await services.identity.keys.create(
        project_id="plat-a",
        name="k",
        role="viewer",
        allowed_models=None,
        expires_at=None,
        rpm=None,
        tpm=None,
        created_by="test",
    )
    principal = await services.authenticate(created.secret)
    assert principal.project_id == "plat-a" and principal.role == "viewer" and principal.scope() == "plat-a"
    with pytest.raises(Unauthorized):
        await services.authenticate("sk-aitp-nope")


async def test_prompts_publish_needs_root_and_render_checks_variables(services: Services) -> None:
    draft = from_data(prompt("plat.ideas"))
    with pytest.raises(Forbidden):
        await services.prompts.publish(ADMIN_A, draft)
    view, created = await services.prompts.publish(ROOT, draft)
    assert created and view["version"] == 1
    listed = {p["name"]: p for p in await services.prompts.list(VIEWER_A)}
    assert listed["plat.ideas"]["production_version"] == 1
    assert listed["plat.ideas"]["variables"]["required"] == ["topic"]
    rendered = await services.prompts.render(VIEWER_A, "plat.ideas", {"topic": "login"})
    assert rendered["messages"] == [{"role": "user", "content": "Test ideas for login."}]
    with pytest.raises(InvalidRequest) as refused:
        await services.prompts.render(VIEWER_A, "plat.ideas", {})
    assert refused.value.param is not None and refused.value.param.startswith("variables")
    with pytest.raises(InvalidRequest) as refused:
        await services.prompts.render(VIEWER_A, "plat.ideas", {"topic": "x"}, version=1, label="production")
    assert refused.value.param == "label"
    with pytest.raises(NotFound):
        await services.prompts.render(VIEWER_A, "plat.none", {"topic": "x"})
    with pytest.raises(Forbidden):
        await services.prompts.set_label(MEMBER_A, "plat.ideas", "canary", 1, weight=0.1)
    with pytest.raises(InvalidRequest) as refused:
        await services.prompts.set_label(ROOT, "plat.ideas", "Bad Label", 1)
    assert refused.value.param == "label"


async def test_budget_status_of_the_callers_project(services: Services) -> None:
    with pytest.raises(Forbidden):
        await services.budgets.put(MEMBER_A, {"project": "plat-a", "limit_tokens": 1000})
    with pytest.raises(Forbidden):
        await services.budgets.put(ADMIN_A, {"project": "plat-b", "limit_tokens": 1000})
    with pytest.raises(InvalidRequest) as refused:
        await services.budgets.put(ADMIN_A, {"project": "plat-a", "limit_tokens": -5})
    assert refused.value.param == "limit_tokens"
    budget, created = await services.budgets.put(
        ADMIN_A, {"project": "plat-a", "limit_tokens": 1000, "period": "day", "action": "block"}
    )
    assert created
    status = await services.budgets.status(VIEWER_A)
    assert status["project"] == "plat-a"
    [line] = status["budgets"]
    assert line["id"] == budget["id"] and line["unit"] == "tokens" and line["action"] == "block"
    assert (line["limit"], line["used"], line["reserved"], line["remaining"]) == (1000, 0, 0, 1000)
    assert line["resets_at"] is not None
    assert status["spend_today_by_tier"] == {} and status["savings_vs_all_plus_usd"] is None
    assert (await services.budgets.status(MEMBER_B))["budgets"] == []
    with pytest.raises(NotFound):
        await services.budgets.budget_status(MEMBER_B, budget["id"])
    with pytest.raises(NotFound):
        await services.budgets.status(MEMBER_B, project="plat-a")
    with pytest.raises(NotFound):
        await services.budgets.list(MEMBER_B, project="plat-a")
    with pytest.raises(Forbidden):
        await services.budgets.delete(MEMBER_A, budget["id"])
    assert (await services.budgets.delete(ADMIN_A, budget["id"]))["id"] == budget["id"]


async def test_usage_reports_stay_in_the_callers_project(services: Services) -> None:
    with pytest.raises(NotFound) as hidden:
        await services.usage.usage(MEMBER_B, project="plat-a")
    assert hidden.value.code == "project_not_found"
    with pytest.raises(InvalidRequest) as refused:
        await services.usage.usage(MEMBER_A, group_by="colour")
    assert refused.value.param == "group_by"
    report = await services.usage.usage(MEMBER_A, group_by="tier")
    assert report["project"] == "plat-a" and report["groups"] == [] and report["totals"]["requests"] == 0


async def test_automation_cases_check_their_arguments(services: Services) -> None:
    assert (await services.automation.list_cases(MEMBER_A))["total"] == 0
    with pytest.raises(InvalidRequest) as refused:
        await services.automation.list_cases(MEMBER_A, target="desktop")
    assert refused.value.param == "target"
    with pytest.raises(NotFound):
        await services.automation.get_case(MEMBER_A, "ac_nope")


async def test_tasks_of_the_platform_follow_the_rules(services: Services) -> None:
    with pytest.raises(Forbidden):
        await services.tasks.submit(VIEWER_A, "system.sleep", {})
    task, created = await services.tasks.submit(MEMBER_A, "system.sleep", {"seconds": 0})
    assert created
    with pytest.raises(NotFound):
        await services.tasks.get(MEMBER_B, task["id"])
    assert (await services.tasks.cancel(MEMBER_A, task["id"]))["status"] == "cancelled"
