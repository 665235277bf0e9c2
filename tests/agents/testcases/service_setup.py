"""A TestCaseService on a real database (SQLite file or a fresh PostgreSQL database) with one task's cases."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, cast

from prometheus_client import CollectorRegistry
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from agents.kb import KnowledgeBase
from agents.tasks.events import LocalBus
from agents.tasks.store import TaskStore
from agents.tasks.tables import TaskRow
from agents.testcases.metrics import GenerationMetrics
from agents.testcases.service import TestCaseService
from agents.testcases.store import TestCaseStore
from core.clock import SystemClock
from core.db import create_engine, migrate
from core.identity.principal import Principal

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


def case(case_id: str, **fields: Any) -> dict[str, Any]:
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
        **fields,
    }


@dataclass
class Setup:
    service: TestCaseService
    examples: Examples
    task_id: str
    engine: AsyncEngine
    store: TestCaseStore

    async def succeed(self, result: dict[str, Any], task_input: dict[str, Any] | None = None) -> None:
        """Mark the task succeeded with ``result``, as the workflow would."""
        values: dict[str, Any] = {"status": "succeeded", "result": result}
        if task_input is not None:
            values["input"] = task_input
        async with self.engine.begin() as conn:
            await conn.execute(update(TaskRow).where(TaskRow.id == self.task_id).values(**values))

    async def review_rows(self) -> list[dict[str, Any]]:
        """The review columns of the task's cases, read straight from the table."""
        sql = text(
            "select id, review_status, edited, reviewed_by, reviewed_at, title, priority "
            "from testcases where task_id = :task order by seq"
        )
        async with self.engine.connect() as conn:
            return [dict(row) for row in (await conn.execute(sql, {"task": self.task_id})).mappings()]


@contextlib.asynccontextmanager
async def service_on(url: str, cases: list[dict[str, Any]]) -> AsyncIterator[Setup]:
    engine = create_engine(url)
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
    store = TestCaseStore(engine, clock)
    await store.replace_for_task("team-a", row["id"], cases)
    examples = Examples()
    service = TestCaseService(store, cast(KnowledgeBase, examples), GenerationMetrics(CollectorRegistry()), tasks)
    try:
        yield Setup(service, examples, str(row["id"]), engine, store)
    finally:
        await engine.dispose()
