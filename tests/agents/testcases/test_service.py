"""TestCaseService called directly with a Principal, as the MCP tools call it: reviews, bulk reviews, isolation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest
from prometheus_client import CollectorRegistry

from agents.kb import KnowledgeBase
from agents.tasks.events import LocalBus
from agents.tasks.store import TaskStore
from agents.testcases.metrics import GenerationMetrics
from agents.testcases.service import TestCaseService
from agents.testcases.store import TestCaseStore
from core.clock import SystemClock
from core.db import create_engine, migrate
from core.errors import Forbidden, InvalidRequest, NotFound
from core.identity.principal import Principal
from core.identity.projects import Conflict

MEMBER_A = Principal(key_id="ka", project_id="team-a", role="member")
VIEWER_A = Principal(key_id="va", project_id="team-a", role="viewer")
MEMBER_B = Principal(key_id="kb", project_id="team-b", role="member")


class Examples:
    """Stands in for the knowledge base: which cases are examples for later generations."""

    def __init__(self) -> None:
        self.ids: set[str] = set()

    async def add_example(self, project_id: str, example_id: str, text: str, metadata: dict[str, Any]) -> None:
        self.ids.add(example_id)

    async def delete_example(self, project_id: str, example_id: str) -> None:
        self.ids.discard(example_id)


def case(case_id: str) -> dict[str, Any]:
    return {
        "id": case_id,
        "title": f"case {case_id}",
        "module": "login",
        "priority": "P1",
        "type": "functional",
        "preconditions": [],
        "steps": [{"step": 1, "action": "log in", "data": "", "expected": "welcome page"}],
        "covers": ["R1"],
        "source": "heuristic",
    }


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[tuple[TestCaseService, Examples, str]]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/aitp.db")
    await migrate(engine)
    clock = SystemClock()
    tasks = TaskStore(engine, LocalBus(), clock)
    row, _ = await tasks.submit(
        project_id="team-a",
        key_id="ka",
        kind="testcase.generate",
        input={},
        idempotency_key=None,
        priority=0,
        max_attempts=1,
    )
    cases = TestCaseStore(engine, clock)
    await cases.replace_for_task("team-a", row["id"], [case("tc_1"), case("tc_2"), case("tc_3")])
    examples = Examples()
    service = TestCaseService(cases, cast(KnowledgeBase, examples), GenerationMetrics(CollectorRegistry()), tasks)
    yield service, examples, str(row["id"])
    await engine.dispose()


async def statuses(service: TestCaseService, task_id: str) -> dict[str, str]:
    found = await service.list_cases(MEMBER_A, task_id, None, 50, 0)
    return {c["id"]: c["review_status"] for c in found["items"]}


async def test_bulk_review_accepts_rejects_and_edits_in_one_call(setup: tuple[TestCaseService, Examples, str]) -> None:
    service, examples, task_id = setup
    done = await service.review_many(MEMBER_A, task_id, ["tc_1"], ["tc_2"], {"tc_3": {"priority": "P0"}})
    assert done == {"task_id": task_id, "accepted": ["tc_1"], "rejected": ["tc_2"], "edited": ["tc_3"], "pending": 0}
    assert await statuses(service, task_id) == {"tc_1": "accepted", "tc_2": "rejected", "tc_3": "accepted"}
    edited = await service.get_case(MEMBER_A, "tc_3")
    assert edited["priority"] == "P0" and edited["edited"] and edited["reviewed_by"] == "ka"
    assert examples.ids == {"tc_1", "tc_3"}  # accepted cases teach later generations; rejected ones do not
    undone = await service.review_many(MEMBER_A, task_id, [], ["tc_1"])
    assert undone["rejected"] == ["tc_1"] and examples.ids == {"tc_3"}


@pytest.mark.parametrize(
    ("accepted", "rejected", "edits", "error", "param"),
    [
        (["tc_1"], ["tc_1"], None, InvalidRequest, "rejected"),
        ([], ["tc_2"], {"tc_2": {"priority": "P0"}}, InvalidRequest, "rejected"),
        (["tc_1"], [], {"tc_2": {"priority": "P9"}}, InvalidRequest, "edits.tc_2.priority"),
        (["tc_1"], [], {"tc_2": {"colour": "red"}}, InvalidRequest, "edits.tc_2.colour"),
        (["tc_1"], [], {"tc_2": {}}, InvalidRequest, "edits.tc_2"),
        ([], [], None, InvalidRequest, "accepted"),
        (["tc_1", "tc_nope"], [], None, NotFound, None),
    ],
)
async def test_a_bad_bulk_review_changes_nothing(
    setup: tuple[TestCaseService, Examples, str],
    accepted: list[str],
    rejected: list[str],
    edits: dict[str, dict[str, Any]] | None,
    error: type[Exception],
    param: str | None,
) -> None:
    service, examples, task_id = setup
    with pytest.raises(error) as refused:
        await service.review_many(MEMBER_A, task_id, accepted, rejected, edits)
    if param is not None:
        assert getattr(refused.value, "param", None) == param
    assert set((await statuses(service, task_id)).values()) == {"pending"}
    assert examples.ids == set()


async def test_viewers_and_other_projects_cannot_review(setup: tuple[TestCaseService, Examples, str]) -> None:
    service, _, task_id = setup
    with pytest.raises(Forbidden) as refused:
        await service.review_many(VIEWER_A, task_id, ["tc_1"], [])
    assert "viewer role" in refused.value.message
    with pytest.raises(Forbidden):
        await service.review_case(VIEWER_A, "tc_1", "accept")
    with pytest.raises(NotFound):
        await service.review_many(MEMBER_B, task_id, ["tc_1"], [])
    with pytest.raises(NotFound):
        await service.review_case(MEMBER_B, "tc_1", "accept")
    with pytest.raises(NotFound):
        await service.get_case(MEMBER_B, "tc_1")
    assert (await service.list_cases(MEMBER_B, task_id, None, 50, 0))["total"] == 0
    assert (await service.get_case(VIEWER_A, "tc_1"))["review_status"] == "pending"


async def test_single_review_checks_the_decision(setup: tuple[TestCaseService, Examples, str]) -> None:
    service, examples, _ = setup
    with pytest.raises(InvalidRequest):
        await service.review_case(MEMBER_A, "tc_1", "maybe")
    with pytest.raises(InvalidRequest) as refused:
        await service.review_case(MEMBER_A, "tc_1", "edit", {"title": ""})
    assert refused.value.param == "changes.title"
    reviewed = await service.review_case(MEMBER_A, "tc_1", "edit", {"title": "renamed"}, note="clearer")
    assert reviewed["title"] == "renamed" and reviewed["review_note"] == "clearer" and examples.ids == {"tc_1"}


async def test_export_waits_for_the_task_and_checks_the_format(setup: tuple[TestCaseService, Examples, str]) -> None:
    service, _, task_id = setup
    with pytest.raises(InvalidRequest) as refused:
        await service.export(MEMBER_A, task_id, "pdf")
    assert refused.value.param == "format"
    with pytest.raises(Conflict) as unfinished:
        await service.export(MEMBER_A, task_id, "md")
    assert unfinished.value.code == "task_not_finished"
    with pytest.raises(NotFound):
        await service.export(MEMBER_B, task_id, "md")
