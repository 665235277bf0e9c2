"""TaskService called directly with a Principal, as the MCP tools call it: the rules hold without HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from pydantic import BaseModel
from sqlalchemy import update

from agents.tasks.kinds import Kind, KindRegistry
from agents.tasks.runtime import TaskRuntime
from agents.tasks.service import TaskService
from agents.tasks.system import SLEEP
from agents.tasks.tables import TaskRow
from core.clock import SystemClock
from core.db import create_engine, migrate
from core.errors import Forbidden, InvalidRequest, NotFound
from core.identity.principal import Principal
from core.settings import Settings

MEMBER_A = Principal(key_id="ka", project_id="team-a", role="member")
VIEWER_A = Principal(key_id="va", project_id="team-a", role="viewer")
MEMBER_B = Principal(key_id="kb", project_id="team-b", role="member")
ROOT = Principal(key_id="admin-env", project_id="default", role="admin", root=True)


class Draft(BaseModel):
    text: str = ""


def check_review(decision: dict[str, Any], input: dict[str, Any], interrupt: Any) -> None:
    if decision["action"] == "corrected" and "title" not in decision["corrected_body"]:
        raise InvalidRequest("a corrected draft needs a title", param="corrected_body.title")


async def run_draft(ctx: Any, spec: Draft) -> dict[str, Any]:
    return {}


DRAFT = Kind(name="test.draft", input_model=Draft, run=run_draft, check_review=check_review)


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[TaskService]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/aitp.db")
    await migrate(engine)
    settings = Settings(dev=True, data_dir=tmp_path)
    # Not started: tasks are stored and enqueued on the in-memory broker, and nothing executes them.
    kinds = KindRegistry([SLEEP, DRAFT])
    runtime = TaskRuntime(settings, engine, CollectorRegistry(), clock=SystemClock(), kinds=kinds)
    yield TaskService(runtime)
    runtime.bus.stop()
    await engine.dispose()


async def pause_for_review(service: TaskService, task_id: str) -> None:
    async with service.runtime.store._engine.begin() as conn:
        await conn.execute(update(TaskRow).where(TaskRow.id == task_id).values(status="reviewing", need_review=True))


async def test_viewer_reads_but_cannot_submit_cancel_or_review(service: TaskService) -> None:
    task, created = await service.submit(MEMBER_A, "system.sleep", {"seconds": 0})
    assert created and task["project"] == "team-a" and task["input"]["seconds"] == 0
    assert (await service.get(VIEWER_A, task["id"]))["id"] == task["id"]
    with pytest.raises(Forbidden) as refused:
        await service.submit(VIEWER_A, "system.sleep", {})
    assert refused.value.code == "role_forbidden" and "viewer role" in refused.value.message
    with pytest.raises(Forbidden):
        await service.cancel(VIEWER_A, task["id"])
    with pytest.raises(Forbidden):
        await service.review(VIEWER_A, task["id"], "approved")
    assert (await service.list(VIEWER_A, None, None, 50, 0))["total"] == 1


async def test_another_projects_task_is_not_found(service: TaskService) -> None:
    task, _ = await service.submit(MEMBER_A, "system.sleep", {})
    for call in (
        service.get(MEMBER_B, task["id"]),
        service.cancel(MEMBER_B, task["id"]),
        service.review(MEMBER_B, task["id"], "approved"),
    ):
        with pytest.raises(NotFound) as missing:
            await call
        assert missing.value.code == "task_not_found"
    assert (await service.list(MEMBER_B, None, None, 50, 0))["total"] == 0
    assert (await service.stats(MEMBER_B))["total"] == 0
    assert (await service.get(ROOT, task["id"]))["id"] == task["id"]  # the server admin key sees every project


@pytest.mark.parametrize(
    ("kind", "input", "extra", "param"),
    [
        ("system.sleep", {"seconds": 601}, {}, "input.seconds"),
        ("system.nap", {}, {}, "kind"),
        ("system.sleep", {}, {"priority": 1000}, "priority"),
        ("system.sleep", {}, {"idempotency_key": "k" * 201}, "idempotency_key"),
        ("system.sleep", {"x": "\x00"}, {}, "input.x"),
    ],
)
async def test_bad_input_is_a_400_naming_the_field(
    service: TaskService, kind: str, input: dict[str, Any], extra: dict[str, Any], param: str
) -> None:
    with pytest.raises(InvalidRequest) as refused:
        await service.submit(MEMBER_A, kind, input, **extra)
    assert refused.value.param == param
    assert (await service.list(MEMBER_A, None, None, 50, 0))["total"] == 0


@pytest.mark.parametrize(
    ("args", "param"),
    [
        ({"status": "done"}, "status"),
        ({"kind": "x.y"}, "kind"),
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"offset": -1}, "offset"),
    ],
)
async def test_listing_checks_its_arguments(service: TaskService, args: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        await service.list(MEMBER_A, **args)
    assert refused.value.param == param


async def test_one_idempotency_key_makes_one_task(service: TaskService) -> None:
    first, created = await service.submit(MEMBER_A, "system.sleep", {"seconds": 1}, idempotency_key="order-7")
    again, created_again = await service.submit(MEMBER_A, "system.sleep", {"seconds": 1}, idempotency_key="order-7")
    assert created and not created_again and again["id"] == first["id"]


async def test_review_applies_the_kinds_check_and_resumes(service: TaskService) -> None:
    task, _ = await service.submit(MEMBER_A, "test.draft", {"text": "x"})
    with pytest.raises(InvalidRequest):
        await service.review(MEMBER_A, task["id"], "maybe")
    await pause_for_review(service, task["id"])
    with pytest.raises(InvalidRequest) as refused:
        await service.review(MEMBER_A, task["id"], "corrected")
    assert "needs a corrected_body" in refused.value.message
    with pytest.raises(InvalidRequest) as refused:
        await service.review(MEMBER_A, task["id"], "corrected", corrected_body={"text": "y"})
    assert refused.value.param == "corrected_body.title"
    reviewed = await service.review(MEMBER_A, task["id"], "corrected", "fixed", {"title": "t"})
    assert reviewed["need_review"] is False


async def test_cancel_of_a_pending_task(service: TaskService) -> None:
    task, _ = await service.submit(MEMBER_A, "system.sleep", {})
    assert (await service.cancel(MEMBER_A, task["id"]))["status"] == "cancelled"
