"""Bulk review is atomic, on SQLite and on PostgreSQL: a bad edit anywhere in the batch changes no row.

The checks read the ``testcases`` table directly, not through the service.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.errors import InvalidRequest, NotFound
from core.identity.projects import Conflict
from tests.agents.testcases.service_setup import MEMBER_A, Setup, case, service_on
from tests.conftest import PostgresDatabases

IDS = [f"tc_{n}" for n in range(1, 7)]


@pytest.fixture(params=["sqlite", "postgres"])
async def db(request: pytest.FixtureRequest, tmp_path: Path, pg_databases: PostgresDatabases) -> AsyncIterator[Setup]:
    url = await pg_databases.create() if request.param == "postgres" else f"sqlite+aiosqlite:///{tmp_path}/aitp.db"
    async with service_on(url, [case(i) for i in IDS]) as setup:
        yield setup


def untouched(rows: list[dict[str, object]]) -> bool:
    return all(
        r["review_status"] == "pending" and not r["edited"] and r["reviewed_by"] is None and r["reviewed_at"] is None
        for r in rows
    )


async def test_a_bad_edit_at_the_end_of_a_batch_changes_no_row(db: Setup) -> None:
    before = await db.review_rows()
    with pytest.raises(InvalidRequest) as refused:
        await db.service.review_many(
            MEMBER_A,
            db.task_id,
            ["tc_1", "tc_2"],
            ["tc_3"],
            {
                "tc_4": {"title": "a good edit"},
                "tc_5": {"priority": "P9", "steps": [{"action": "", "expected": "x"}]},
                "tc_6": {"colour": "red"},
            },
        )
    after = await db.review_rows()
    assert after == before and untouched(after)
    assert db.examples.ids == set()
    # Every problem is reported, each with its case id and field; the first one is the error's param.
    errors = refused.value.extra["errors"]
    assert {(e["case_id"], e["field"]) for e in errors} == {
        ("tc_5", "edits.tc_5.priority"),
        ("tc_5", "edits.tc_5.steps[0].action"),
        ("tc_6", "edits.tc_6.colour"),
    }
    assert refused.value.param == "edits.tc_5.steps[0].action"
    assert refused.value.message.startswith("3 problems, nothing was changed: case tc_5, 'edits.tc_5.steps[0].action'")
    assert "case tc_6, 'edits.tc_6.colour': Extra inputs are not permitted" in refused.value.message


async def test_an_edit_that_breaks_the_case_or_a_conflict_is_refused_whole(db: Setup) -> None:
    with pytest.raises(InvalidRequest) as refused:
        await db.service.review_many(
            MEMBER_A, db.task_id, ["tc_1"], ["tc_2", "tc_3"], {"tc_2": {"priority": "P0"}, "tc_4": {"covers": ["X"]}}
        )
    fields = [(e["case_id"], e["field"]) for e in refused.value.extra["errors"]]
    assert fields == [("tc_2", "rejected"), ("tc_4", "edits.tc_4.covers[0]")]
    assert untouched(await db.review_rows())
    with pytest.raises(NotFound) as unknown:
        await db.service.review_many(MEMBER_A, db.task_id, ["tc_1", "tc_nope", "tc_gone"], [])
    assert [e["case_id"] for e in unknown.value.extra["errors"]] == ["tc_gone", "tc_nope"]
    assert "nothing was changed" in unknown.value.message
    assert untouched(await db.review_rows())


async def test_a_failure_while_storing_rolls_the_whole_batch_back(db: Setup) -> None:
    """A case gone between the checks and the write: the store's single transaction undoes the earlier updates."""
    current = {c["id"]: c for c in await db.store.for_task("team-a", db.task_id)}
    gone = {**current["tc_6"], "id": "tc_deleted_meanwhile"}
    reviews = [
        (current["tc_1"], "accepted", None, None),
        (current["tc_2"], "accepted", {"title": "edited"}, "ok"),
        (gone, "rejected", None, None),
    ]
    with pytest.raises(Conflict) as conflict:
        await db.store.review_many("team-a", reviews, reviewer="ka")
    assert conflict.value.code == "review_conflict" and "nothing was stored" in conflict.value.message
    rows = await db.review_rows()
    assert untouched(rows) and rows[1]["title"] == "case tc_2"
    # Another project's key cannot review the case either: the project is part of every update.
    with pytest.raises(Conflict):
        await db.store.review_many("team-b", [(current["tc_1"], "accepted", None, None)], reviewer="kb")
    assert untouched(await db.review_rows())


async def test_a_good_batch_is_stored_whole(db: Setup) -> None:
    done = await db.service.review_many(
        MEMBER_A,
        db.task_id,
        ["tc_1", "tc_2", "tc_1"],
        ["tc_3"],
        {"tc_4": {"steps": [{"action": "输入 8 位密码", "data": "Abc12345", "expected": "登录成功"}]}},
    )
    assert done == {
        "task_id": db.task_id,
        "accepted": ["tc_1", "tc_2"],
        "rejected": ["tc_3"],
        "edited": ["tc_4"],
        "pending": 2,
    }
    rows = {r["id"]: r for r in await db.review_rows()}
    statuses = [rows[i]["review_status"] for i in IDS]
    assert statuses == ["accepted", "accepted", "rejected", "accepted", "pending", "pending"]
    assert rows["tc_4"]["edited"] and rows["tc_1"]["reviewed_by"] == "ka"
    assert len({rows[i]["reviewed_at"] for i in IDS[:4]}) == 1, "one batch, one review time"
    edited = await db.service.get_case(MEMBER_A, "tc_4")
    assert edited["steps"] == [{"step": 1, "action": "输入 8 位密码", "data": "Abc12345", "expected": "登录成功"}]
    assert db.examples.ids == {"tc_1", "tc_2", "tc_4"}
