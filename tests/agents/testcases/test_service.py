"""TestCaseService called directly with a Principal, as the MCP tools call it: reviews, bulk reviews, isolation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agents.testcases.service import TestCaseService
from core.errors import Forbidden, InvalidRequest, NotFound
from core.identity.projects import Conflict
from tests.agents.testcases.service_setup import MEMBER_A, MEMBER_B, VIEWER_A, Examples, case, service_on


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[tuple[TestCaseService, Examples, str]]:
    async with service_on(f"sqlite+aiosqlite:///{tmp_path}/aitp.db", [case("tc_1"), case("tc_2"), case("tc_3")]) as s:
        yield s.service, s.examples, s.task_id


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
