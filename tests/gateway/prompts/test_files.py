"""Prompt files loaded on start: versions, production following the file, pinning, replicas, bad files."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine

import gateway.prompts
from core.db import Base
from tests.conftest import PostgresDatabases, Server, ServerFactory, gateway_config
from tests.fakes.llm_upstream import FakeUpstream

from .conftest import prompt_env, spec, write_prompt


@pytest.fixture(params=["sqlite", "postgres"])
async def database_url(request: pytest.FixtureRequest, pg_databases: PostgresDatabases, tmp_path: Path) -> str:
    if request.param == "postgres":
        return await pg_databases.create()
    return f"sqlite+aiosqlite:///{tmp_path / 'shared' / 'aitp.db'}"


def labels(server: Server, name: str) -> dict[str, dict]:
    return {r["label"]: r for r in server.api("GET", f"/api/prompts/{name}").json()["labels"]}


async def test_production_follows_the_file_unless_pinned(
    server_factory: ServerFactory, fake: FakeUpstream, tmp_path: Path, database_url: str
) -> None:
    directory = tmp_path / "prompts"
    directory.mkdir()
    write_prompt(directory, spec("files.alpha", "alpha {{ topic }}"))
    beta = write_prompt(directory, spec("files.beta"))
    config = gateway_config(fake)

    async def start() -> Server:
        return await asyncio.to_thread(server_factory, config, database_url, extra_env=prompt_env(directory))

    first = await start()
    shown = first.api("GET", "/api/prompts/files.alpha").json()
    assert [(v["version"], v["source"], v["created_by"]) for v in shown["versions"]] == [(1, "file", "file")]
    assert labels(first, "files.alpha")["production"]["version"] == 1
    assert labels(first, "files.alpha")["production"]["pinned"] is False
    audit = first.api("GET", "/api/audit?limit=1000").json()["items"]
    loaded = {(e["action"], e["target"]) for e in audit if e["actor"] == "prompt-files"}
    assert {("prompt.publish", "files.alpha@1"), ("prompt.label", "files.alpha")} <= loaded
    first.stop()

    # A changed file becomes version 2 and production follows; a comment changes nothing.
    write_prompt(directory, spec("files.alpha", "alpha two {{ topic }}"))
    beta.write_text("# reviewed by QA\n" + beta.read_text())
    second = await start()
    assert labels(second, "files.alpha")["production"]["version"] == 2
    assert labels(second, "files.alpha")["production"]["previous_version"] == 1
    assert [v["version"] for v in second.api("GET", "/api/prompts/files.beta").json()["versions"]] == [1]
    # An admin pins production back to version 1.
    pinned = second.api("PUT", "/api/prompts/files.alpha/labels/production", json={"version": 1})
    assert pinned.json()["state"]["pinned"] is True
    second.stop()

    write_prompt(directory, spec("files.alpha", "alpha three {{ topic }}"))
    third = await start()
    assert [v["version"] for v in third.api("GET", "/api/prompts/files.alpha").json()["versions"]] == [1, 2, 3]
    assert labels(third, "files.alpha")["production"]["version"] == 1, "file loading never moves a pinned label"
    assert "stays at version 1 (pinned by admin-env)" in third.log()
    # Unpinning hands production back to the file: on the next start it follows it again.
    unpinned = third.api("PUT", "/api/prompts/files.alpha/labels/production", json={"version": 1, "pinned": False})
    assert unpinned.json()["state"]["pinned"] is False
    third.stop()

    fourth = await start()
    assert labels(fourth, "files.alpha")["production"]["version"] == 3
    assert [v["version"] for v in fourth.api("GET", "/api/prompts/files.alpha").json()["versions"]] == [1, 2, 3]
    fourth.stop()


async def test_replicas_loading_the_same_files_at_once(
    server_factory: ServerFactory, fake: FakeUpstream, tmp_path: Path, pg_databases: PostgresDatabases
) -> None:
    directory = tmp_path / "prompts"
    directory.mkdir()
    names = [f"race.p{i}" for i in range(6)]
    for name in names:
        write_prompt(directory, spec(name))
    url = await pg_databases.create()
    env = {**prompt_env(directory), "AITP_ADMIN_KEY": "sk-aitp-race-admin-Zq8rT1vWm3Np7Ks2Lx9Bd4Hf6Gj0Yc5E"}
    replicas = await asyncio.gather(
        *[asyncio.to_thread(server_factory, gateway_config(fake), url, extra_env=env) for _ in range(3)]
    )
    for name in names:
        shown = replicas[0].api("GET", f"/api/prompts/{name}").json()
        assert [v["version"] for v in shown["versions"]] == [1], shown
        assert [(r["label"], r["version"], r["revision"]) for r in shown["labels"]] == [("production", 1, 1)]
    audit = replicas[0].api("GET", "/api/audit?limit=1000").json()["items"]
    publishes = [e["target"] for e in audit if e["action"] == "prompt.publish"]
    assert sorted(publishes) == sorted(f"{n}@1" for n in names), "each file was published once"
    for server in replicas:
        server.stop()


def test_a_bad_prompt_file_stops_the_start_naming_it(
    server_factory: ServerFactory, fake: FakeUpstream, tmp_path: Path
) -> None:
    # Every other kind of bad file is refused the same way; tests/gateway/prompts/test_cli.py checks them offline.
    directory = tmp_path / "prompts"
    directory.mkdir()
    write_prompt(directory, spec("files.fine"))
    text = "name: files.broken\ntemplate:\n  - role: user\n    content: |\n      ok\n      {{ oops }\n"
    (directory / "files.broken.yaml").write_text(text)
    with pytest.raises(RuntimeError) as info:
        server_factory(gateway_config(fake), extra_env=prompt_env(directory))
    assert "files.broken.yaml" in str(info.value)
    assert "syntax error at line 2 (line 6 of the file)" in str(info.value)


def test_the_default_directory_is_the_shipped_prompts(gateway: Server) -> None:
    # The gateway fixture runs from an empty temp dir with no prompts setting: the repo's prompts/ load.
    listed = {p["name"]: p for p in gateway.api("GET", "/api/prompts").json()["items"]}
    shipped = {p.stem for p in (Path(__file__).resolve().parents[3] / "prompts").glob("*.yaml")}
    assert {"testcase.generate", "testcase.repair", "automation.generate", "browser.plan"} <= shipped
    assert shipped <= set(listed)
    assert all(listed[name]["labels"]["production"]["version"] >= 1 for name in shipped)


def _prompt_table_diffs(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return [
        d
        for d in compare_metadata(context, Base.metadata)
        if "prompt_versions" in repr(d) or "prompt_labels" in repr(d)
    ]


async def test_migration_creates_the_tables_the_code_uses(prompt_server: Server) -> None:
    # the tables are registered on Base.metadata by importing the package
    assert gateway.prompts.PromptRegistry is not None
    engine = create_async_engine(prompt_server.database_url)
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(_prompt_table_diffs) == []
    finally:
        await engine.dispose()
