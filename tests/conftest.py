"""Shared fixtures: the fake upstream, fresh databases and live ``aitp serve`` processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import secrets
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio
import yaml
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.fakes.llm_upstream import FakeUpstream
from tests.zygote import Launcher, Process

REPO = Path(__file__).resolve().parent.parent
PG_ADMIN_DSN = os.environ.get("AITP_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
_PORT_LINE = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")


@pytest.fixture(scope="session")
def fake() -> Iterator[FakeUpstream]:
    upstream = FakeUpstream().start()
    yield upstream
    upstream.stop()


@pytest.fixture(autouse=True)
def _reset_fake(request: pytest.FixtureRequest) -> None:
    if "fake" in request.fixturenames:
        request.getfixturevalue("fake").reset()


class PostgresDatabases:
    """Creates a fresh PostgreSQL database per use and drops them all at the end."""

    def __init__(self) -> None:
        self.created: list[str] = []

    async def _admin(self) -> asyncpg.Connection:
        try:
            return await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
        except (OSError, asyncpg.PostgresError) as exc:
            raise RuntimeError(
                f"PostgreSQL is not reachable at {PG_ADMIN_DSN} ({exc}); start it (see .ci/run) or set AITP_TEST_PG_DSN"
            ) from exc

    async def create(self) -> str:
        name = f"aitp_test_{secrets.token_hex(6)}"
        conn = await self._admin()
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        self.created.append(name)
        base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
        return f"{base}/{name}"

    async def drop_all(self) -> None:
        if not self.created:
            return
        conn = await self._admin()
        try:
            for name in self.created:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


@pytest.fixture(scope="session")
async def pg_databases() -> AsyncIterator[PostgresDatabases]:
    databases = PostgresDatabases()
    yield databases
    await databases.drop_all()


@dataclass
class Server:
    """A live ``aitp serve`` subprocess."""

    process: Process
    port: int
    database_url: str
    log_path: Path
    data_dir: Path
    admin_key: str
    env: dict[str, str] = field(default_factory=dict)
    launcher: Launcher | None = None  # also starts this server's workers

    @property
    def admin_headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.admin_key}"}

    def api(self, method: str, path: str, key: str | None = None, **kw: Any) -> httpx.Response:
        """Call the REST API (``/api/...``) with the admin key unless another is given."""
        headers = {"authorization": f"Bearer {key or self.admin_key}", **kw.pop("headers", {})}
        return httpx.request(method, f"{self.base_url}{path}", headers=headers, timeout=30, **kw)

    def new_key(self, project: str = "default", role: str = "member", **spec: Any) -> str:
        """A fresh virtual key (creating the project when needed)."""
        if project != "default":
            created = self.api("POST", "/api/projects", json={"name": project})
            assert created.status_code in (201, 409), created.text
        response = self.api("POST", "/api/keys", json={"project": project, "name": f"{role}-key", "role": role, **spec})
        assert response.status_code == 201, response.text
        return str(response.json()["key"])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def v1(self) -> str:
        return f"{self.base_url}/v1"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    async def rows(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        """Read the server's database directly (to check what it persisted)."""
        engine = create_async_engine(self.database_url)
        try:
            async with engine.connect() as conn:
                result = await conn.execute(text(sql), params)
                return [dict(row._mapping) for row in result]
        finally:
            await engine.dispose()

    async def wait_rows(self, sql: str, count: int = 1, timeout: float = 10.0, **params: Any) -> list[dict[str, Any]]:
        """Usage rows are written in batches: poll until ``count`` rows match."""
        deadline = time.monotonic() + timeout
        while True:
            rows = await self.rows(sql, **params)
            if len(rows) >= count or time.monotonic() > deadline:
                return rows
            await asyncio.sleep(0.1)


def fake_models(fake: FakeUpstream) -> list[dict[str, Any]]:
    """The default tiers (dashscope/qwen-*) pointed at the fake upstream, plus extra deployments."""
    return [
        {
            "name": "qwen-turbo",
            "model": "dashscope/qwen-turbo",
            "tier": "turbo",
            "api_base": fake.base_url,
            "api_key": "test-key",
            "extra_params": ["enable_search"],
        },
        {
            "name": "qwen-plus",
            "model": "dashscope/qwen-plus",
            "tier": "plus",
            "api_base": fake.base_url,
            "api_key": "test-key",
            "extra_params": ["enable_search"],
        },
        {"name": "local-vllm", "model": "hosted_vllm/llama-3-8b", "api_base": fake.base_url, "api_key_env": None},
        {
            "name": "text-embedding-v3",
            "model": "openai/text-embedding-v3",
            "api_base": fake.base_url,
            "api_key": "test-key",
            "input_cost_per_token": 1e-7,
        },
    ]


def start_server(
    tmp: Path,
    config: dict[str, Any],
    database_url: str,
    extra_env: dict[str, str] | None = None,
    module: str = "aitp.cli",  # another module that runs ``aitp serve`` (e.g. with test-only routes added)
    launcher: Launcher | None = None,
) -> Server:
    tmp.mkdir(parents=True, exist_ok=True)
    config_path = tmp / "aitp.yaml"
    config_path.write_text(yaml.safe_dump(config, allow_unicode=True))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AITP_") and k not in {"DASHSCOPE_API_KEY"}}
    admin_key = "sk-aitp-test-admin-" + secrets.token_urlsafe(24)
    env.update(
        {
            "AITP_ADMIN_KEY": admin_key,
            "AITP_CONFIG": str(config_path),
            "AITP_DATA_DIR": str(tmp / "data"),
            "AITP_DATABASE_URL": database_url,
            "AITP_LOG_LEVEL": "info",
            # Dozens of servers and workers share one PostgreSQL (max_connections 100): keep few idle.
            "AITP_DATABASE_POOL_SIZE": "2",
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "NO_PROXY": "127.0.0.1,localhost",
        }
    )
    env.update(extra_env or {})
    log_path = tmp / "server.log"
    log_file = log_path.open("wb")
    starter = launcher or Launcher(tmp, fork=False)
    process = starter.start(module, ["serve", "--host", "127.0.0.1", "--port", "0"], env=env, cwd=tmp, log=log_file)
    deadline = time.monotonic() + 60
    port = 0
    while port == 0:
        if process.poll() is not None:
            raise RuntimeError(f"aitp serve exited with {process.returncode}:\n{log_path.read_text()}")
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"aitp serve did not start in time:\n{log_path.read_text()}")
        match = _PORT_LINE.search(log_path.read_text(errors="replace"))
        if match:
            port = int(match.group(1))
        else:
            time.sleep(0.05)
    server = Server(process, port, database_url, log_path, tmp / "data", env["AITP_ADMIN_KEY"], env, launcher)
    _wait_ready(server, deadline)
    return server


def _wait_ready(server: Server, deadline: float) -> None:
    with httpx.Client(timeout=2) as client:
        while time.monotonic() < deadline:
            try:
                checks = client.get(f"{server.base_url}/readyz").json()["checks"]
                # Redis may be down on purpose; the server is up once the database and litellm are.
                if checks["database"] == "ok" and checks["llm_engine"] == "ok":
                    return
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"aitp serve never became ready:\n{server.log()}")


ServerFactory = Callable[..., Server]


@pytest.fixture(scope="session")
def launcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launcher]:
    """Starts servers and workers, forked from one process that has imported them (see tests/zygote.py)."""
    starter = Launcher(tmp_path_factory.mktemp("zygote"))
    yield starter
    starter.close()


@dataclass
class StartedServers:
    """Every server the factory started; ``kept`` ones serve fixtures wider than a module."""

    servers: list[Server] = field(default_factory=list)
    kept: set[int] = field(default_factory=set)  # ids of kept servers

    def stop_since(self, count: int) -> None:
        for server in self.servers[count:]:
            if id(server) not in self.kept:
                server.stop()


@pytest.fixture(scope="session")
def started_servers(launcher: Launcher) -> Iterator[StartedServers]:
    # Depends on the launcher so that it is torn down first: the zygote must outlive its servers.
    started = StartedServers()
    yield started
    for server in started.servers:
        server.stop()


@pytest.fixture(scope="module", autouse=True)
def _stop_the_modules_servers(started_servers: StartedServers) -> Iterator[None]:
    """A module's servers stop when it ends: each holds database connections (PostgreSQL allows ~100
    in all) and a few hundred MB, and parallel test workers would otherwise run out of both."""
    count = len(started_servers.servers)
    yield
    started_servers.stop_since(count)


@pytest.fixture(scope="session")
def server_factory(
    tmp_path_factory: pytest.TempPathFactory, launcher: Launcher, started_servers: StartedServers
) -> ServerFactory:
    def factory(config: dict[str, Any], database_url: str | None = None, keep: bool = False, **kw: Any) -> Server:
        """``keep``: the server serves a session- or package-scoped fixture, so it outlives the module."""
        tmp = tmp_path_factory.mktemp("aitp")
        url = database_url or f"sqlite+aiosqlite:///{tmp / 'data' / 'aitp.db'}"
        server = start_server(tmp, config, url, launcher=launcher, **kw)
        started_servers.servers.append(server)
        if keep:
            started_servers.kept.add(id(server))
        return server

    return factory


def gateway_config(fake: FakeUpstream, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "models": fake_models(fake),
        "routing": {"long_prompt_tokens": 60},
        "retries": {"num_retries": 1, "retry_after_s": 0, "timeout_s": 1.5},
        "usage": {"flush_interval_s": 0.05},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return config


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
async def gateway(
    request: pytest.FixtureRequest, fake: FakeUpstream, server_factory: ServerFactory, pg_databases: PostgresDatabases
) -> Server:
    """The main gateway server, once on SQLite and once on PostgreSQL."""
    url = await pg_databases.create() if request.param == "postgres" else None
    return await asyncio.to_thread(server_factory, gateway_config(fake), url, keep=True)


def redis_env() -> dict[str, str]:
    """``AITP_REDIS_URL`` and ``AITP_REDIS_PREFIX`` for a server: a random database and prefix on the shared Redis."""
    return {
        "AITP_REDIS_URL": f"redis://127.0.0.1:6379/{random.randint(1, 15)}",
        "AITP_REDIS_PREFIX": "aitp-test-" + secrets.token_hex(4),
    }


async def drop_redis_keys(env: dict[str, str]) -> None:
    """Delete every key under the prefix of :func:`redis_env`."""
    client = redis.asyncio.Redis.from_url(env["AITP_REDIS_URL"])
    try:
        async for key in client.scan_iter(match=env["AITP_REDIS_PREFIX"] + "*"):
            await client.delete(key)
    finally:
        await client.aclose()


@dataclass
class Worker:
    """A live ``aitp worker`` process group (its own session, so ``kill -9`` takes every process of it)."""

    process: Process
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the whole group: the machine died mid-task."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM: graceful shutdown."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()


def start_worker(server: Server, *args: str, extra_env: dict[str, str] | None = None) -> Worker:
    """``aitp worker`` with the server's settings (database, Redis, config); waits until it is ready."""
    log_path = server.log_path.parent / f"worker-{secrets.token_hex(3)}.log"
    log_file = log_path.open("wb")
    starter = server.launcher or Launcher(server.log_path.parent, fork=False)
    process = starter.start(
        "aitp.cli",
        ["worker", *args],
        env={**server.env, **(extra_env or {})},
        cwd=server.log_path.parent,
        log=log_file,
        new_session=True,
    )
    worker = Worker(process, log_path)
    processes = int(args[args.index("--processes") + 1]) if "--processes" in args else 1
    deadline = time.monotonic() + 60
    while worker.log().count("worker ready") < processes:
        if process.poll() is not None or time.monotonic() > deadline:
            worker.kill()
            raise RuntimeError(f"aitp worker did not start:\n{worker.log()}")
        time.sleep(0.05)
    return worker
