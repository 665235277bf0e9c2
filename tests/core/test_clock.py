"""One clock: the product reads the wall time only through core.clock, and stores stamp rows with it."""

from __future__ import annotations

import ast
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from core.clock import Clock, SystemClock
from core.db import create_engine, migrate
from core.errors import Unauthorized
from core.identity.audit import AuditLog
from core.identity.keys import KeyStore, key_view
from core.identity.principal import Principal
from core.identity.projects import ProjectStore
from core.timefmt import utc_iso
from tests.fakes.clock import FakeClock

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("core", "gateway", "agents", "aitp", "mcp_server")
ALLOWED = {Path("core/clock.py")}
T0 = datetime(2026, 11, 23, 10, 41, 5, tzinfo=UTC)

# (module, attribute) calls that read the wall clock.
WALL_CLOCK_CALLS = {
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("datetime", "today"),
    ("date", "today"),
    ("time", "time"),
    ("time", "time_ns"),
}


def wall_clock_reads(source: str) -> list[tuple[int, str]]:
    """Lines that read the wall clock directly, found in the syntax tree (comments and strings do not count)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", None)
            if (name, node.func.attr) in WALL_CLOCK_CALLS:
                found.append((node.lineno, f"{name}.{node.func.attr}()"))
        elif isinstance(node, ast.ImportFrom) and node.module == "time":
            # `from time import time` would hide the call from the check above.
            found += [(node.lineno, f"from time import {a.name}") for a in node.names if a.name in {"time", "time_ns"}]
    return found


def test_the_product_reads_the_wall_clock_only_in_core_clock() -> None:
    offenders = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT)
            if relative in ALLOWED or "migrations" in relative.parts:
                continue
            offenders += [f"{relative}:{line}: {what}" for line, what in wall_clock_reads(path.read_text())]
    assert offenders == [], "read the time from a Clock passed down (core/clock.py), not directly:\n" + "\n".join(
        offenders
    )


def test_the_check_finds_each_form_of_wall_clock_read() -> None:
    source = (
        "import datetime as dt, time\nfrom time import time as now\n"
        "a = dt.datetime.now(dt.UTC)\nb = datetime.utcnow()\nc = time.time()\nd = date.today()\n"
        "e = time.perf_counter()\n# datetime.now() in a comment\n"
    )
    assert [line for line, _ in wall_clock_reads(source)] == [2, 3, 4, 5, 6]


def test_system_clock_gives_aware_utc() -> None:
    clock: Clock = SystemClock()
    now = clock.now()
    assert now.tzinfo is not None and now.utcoffset() == timedelta(0)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/aitp.db")
    await migrate(engine)
    yield engine
    await engine.dispose()


async def test_identity_rows_carry_the_injected_clock(db: AsyncEngine) -> None:
    clock = FakeClock(T0)
    projects, audit = ProjectStore(db, clock), AuditLog(db, clock)
    project = await projects.create("clocked", "")
    clock.advance(30)
    await audit.record(
        Principal(key_id="k1", project_id="clocked", role="admin"), "x", project_id="clocked", target=None
    )
    assert utc_iso((await projects.get(project.id)).created_at) == "2026-11-23T10:41:05Z"
    # SQLite hands the stored time back without its zone, so the audit view shows it without the Z.
    assert [entry["at"].removesuffix("Z") for entry in await audit.find("clocked", 10, 0)] == ["2026-11-23T10:41:35"]


async def test_a_key_expires_when_the_clock_passes_its_expiry(db: AsyncEngine) -> None:
    clock = FakeClock(T0)
    keys = KeyStore(db, "sk-aitp-admin-test", clock)
    await ProjectStore(db, clock).create("clocked", "")
    new = await keys.create(
        project_id="clocked",
        name="short",
        role="member",
        allowed_models=None,
        expires_at=T0 + timedelta(minutes=5),
        rpm=None,
        tpm=None,
        created_by="root",
    )
    assert key_view(new.spec, clock.now())["created_at"] == "2026-11-23T10:41:05Z"
    clock.advance(299)
    assert (await keys.authenticate(f"Bearer {new.secret}")).key_id == new.spec.id
    clock.advance(1)
    with pytest.raises(Unauthorized) as refused:
        await keys.authenticate(f"Bearer {new.secret}")
    assert refused.value.code == "key_expired"
    assert key_view(await keys.get(new.spec.id), clock.now())["status"] == "expired"
    clock.advance(60)
    assert key_view(await keys.revoke(new.spec.id, "done"), clock.now())["revoked_at"] == "2026-11-23T10:47:05Z"
