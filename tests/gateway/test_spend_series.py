"""Spend series and scope spend on both databases, through UsageReports (no server: the SQL is what differs)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import create_engine, migrate
from core.identity.principal import Principal
from gateway.pricing import Price
from gateway.reports import UsageReports
from gateway.usage import UsageRecord
from tests.conftest import PostgresDatabases
from tests.fakes.clock import FakeClock

NOW = datetime(2026, 12, 7, 16, 30, tzinfo=UTC)
ROOT = Principal(key_id="admin-env", project_id="default", role="admin", root=True)


@pytest.fixture(params=["sqlite", "postgres"])
async def engine(
    request: pytest.FixtureRequest, tmp_path: Path, pg_databases: PostgresDatabases
) -> AsyncIterator[AsyncEngine]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'u.db'}" if request.param == "sqlite" else await pg_databases.create()
    db = create_engine(url)
    await migrate(db)
    yield db
    await db.dispose()


def row(at: datetime, model: str, tier: str, tokens: int, cost: float, key: str = "k1", user: str | None = None):
    return {
        "request_id": f"r-{at.isoformat()}-{model}", "created_at": at, "endpoint": "chat", "project_id": "default",
        "key_id": key, "user": user, "model_requested": "auto", "model_used": model, "tier": tier,
        "prompt_tokens": tokens, "completion_tokens": 0, "cost_usd": cost, "latency_ms": 10.0, "status": "ok",
        "http_status": 200,
    }  # fmt: skip


async def reports(engine: AsyncEngine) -> UsageReports:
    async def plus() -> Price:
        return Price(1e-6, 2e-6)

    async with engine.begin() as conn:
        await conn.execute(
            insert(UsageRecord),
            [
                row(NOW - timedelta(hours=2, minutes=10), "qwen-turbo", "turbo", 100, 0.001),
                row(NOW - timedelta(hours=2, minutes=5), "qwen-plus", "plus", 50, 0.004, key="k2", user="ann"),
                row(NOW - timedelta(minutes=20), "qwen-turbo", "turbo", 30, 0.0005, user="ann"),
                row(NOW - timedelta(days=1, hours=3), "qwen-plus", "plus", 10, 0.002),
            ],
        )
    return UsageReports(engine, plus, FakeClock(NOW))


async def test_hourly_series_stacks_by_tier_and_fills_gaps(engine: AsyncEngine) -> None:
    found = await (await reports(engine)).series(ROOT, start=NOW - timedelta(hours=3), bucket="hour", stack="tier")
    assert found["buckets"] == ["2026-12-07T13:00:00Z", "2026-12-07T14:00:00Z", "2026-12-07T15:00:00Z",
                                "2026-12-07T16:00:00Z"]  # fmt: skip
    lines = {s["key"]: s for s in found["series"]}
    assert lines["turbo"]["tokens"] == [0, 100, 0, 30] and lines["plus"]["tokens"] == [0, 50, 0, 0]
    assert lines["turbo"]["cost_usd"] == [0.0, 0.001, 0.0, 0.0005]
    assert found["totals"] == {"requests": 3, "tokens": 180, "cost_usd": 0.0055}


async def test_daily_series_by_model_and_key(engine: AsyncEngine) -> None:
    usage = await reports(engine)
    found = await usage.series(ROOT, start=NOW - timedelta(days=2), bucket="day", stack="model")
    assert found["buckets"] == ["2026-12-05", "2026-12-06", "2026-12-07"]
    assert {s["key"]: s["requests"] for s in found["series"]} == {"qwen-plus": [0, 1, 1], "qwen-turbo": [0, 0, 2]}
    mine = await usage.series(ROOT, start=NOW - timedelta(days=2), key="k2")
    assert mine["totals"]["requests"] == 1 and mine["key"] == "k2"


async def test_scope_spend(engine: AsyncEngine) -> None:
    usage = await reports(engine)
    since = NOW - timedelta(hours=24)
    for scope, scope_id, tokens, usd in (("project", None, 180, 0.0055), ("key", "k2", 50, 0.004),
                                         ("user", "ann", 80, 0.0045)):  # fmt: skip
        spent_tokens, spent_usd = await usage.scope_spend("default", scope, scope_id, since, NOW)
        assert spent_tokens == tokens and spent_usd == pytest.approx(usd)
    assert await usage.scope_spend("other", "project", None, since, NOW) == (0, 0.0)
