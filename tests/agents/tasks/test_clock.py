"""The task store stamps tasks and events with the clock it is given, and retention counts on that clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agents.tasks.events import LocalBus
from agents.tasks.store import TaskStore, task_view
from core.db import create_engine, migrate
from tests.fakes.clock import FakeClock

T0 = datetime(2026, 11, 23, 10, 41, 5, tzinfo=UTC)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[tuple[TaskStore, FakeClock]]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/aitp.db")
    await migrate(engine)
    clock = FakeClock(T0)
    yield TaskStore(engine, LocalBus(), clock), clock
    await engine.dispose()


async def submit(store: TaskStore) -> str:
    row, created = await store.submit(
        project_id="p", key_id="k", kind="system.sleep", input={}, idempotency_key=None, priority=0, max_attempts=1
    )
    assert created
    return str(row["id"])


async def test_submit_and_cancel_take_their_times_from_the_clock(store: tuple[TaskStore, FakeClock]) -> None:
    tasks, clock = store
    task_id = await submit(tasks)
    clock.advance(90)
    view = task_view(await tasks.cancel(task_id, "p"))
    assert (view["created_at"], view["finished_at"], view["updated_at"]) == (
        "2026-11-23T10:41:05Z",
        "2026-11-23T10:42:35Z",
        "2026-11-23T10:42:35Z",
    )
    assert [(e.type, e.created_at) for e in await tasks.events_after(task_id, 0)] == [
        ("task_created", "2026-11-23T10:41:05Z"),
        ("task_cancelled", "2026-11-23T10:42:35Z"),
    ]


async def test_retention_purges_what_finished_longer_ago_on_the_clock(store: tuple[TaskStore, FakeClock]) -> None:
    tasks, clock = store
    old = await submit(tasks)
    await tasks.cancel(old, "p")
    clock.advance(3600)
    recent = await submit(tasks)
    await tasks.cancel(recent, "p")
    clock.advance(1800)
    assert await tasks.purge(timedelta(hours=1)) == 1
    assert task_view(await tasks.get(recent, "p"))["id"] == recent
