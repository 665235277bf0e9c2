"""Budget race bench: the fake upstream, the aitp replicas, PostgreSQL, Redis and CPU readings."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import subprocess
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import redis.asyncio
import yaml
from br_config import (
    FAKE_COMPLETION_TOKENS,
    FAKE_MODEL,
    PG_ADMIN_DSN,
    PORT_LINE,
    REPLICAS,
    REPO,
    STARTUP_TIMEOUT_S,
    UPSTREAM_LATENCY_MS,
    VENV_BIN,
    Cleanup,
    Replica,
)
from harness import HOST, log_tail

# -------------------------------------------------------------------- processes


def _base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AITP_", "LITELLM_", "DASHSCOPE_"))}
    env.update({"LITELLM_LOCAL_MODEL_COST_MAP": "True", "NO_PROXY": "127.0.0.1,localhost", "PYTHONUNBUFFERED": "1"})
    return env


def spawn(cleanup: Cleanup, cmd: list[str], env: dict[str, str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    cleanup.procs.append(proc)
    return proc


async def wait_log_port(proc: subprocess.Popen[bytes], log: Path, pattern: re.Pattern[bytes], name: str) -> int:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        match = pattern.search(_read(log))
        if match:
            return int(match.group(1))
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}:\n{log_tail(log, 30)}")
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{name} did not report its port in {STARTUP_TIMEOUT_S:.0f} s:\n{log_tail(log, 30)}")


def _read(log: Path) -> bytes:
    return log.read_bytes()


async def start_fake(cleanup: Cleanup, workdir: Path) -> int:
    cmd = [str(VENV_BIN / "python"), "-m", "tests.fakes.llm_upstream", "--port", "0", "--latency-ms"]
    cmd += [f"{UPSTREAM_LATENCY_MS:g}", "--no-record"]
    log = workdir / "fake.log"
    proc = spawn(cleanup, cmd, _base_env(), log, REPO)
    port = await wait_log_port(proc, log, re.compile(rb"PORT (\d+)"), "fake upstream")
    reply = {"content": "step " * 60, "completion_tokens": FAKE_COMPLETION_TOKENS}  # prompt tokens: counted words
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(
            f"http://{HOST}:{port}/_control/script", json={"model": FAKE_MODEL, "default": reply}
        )
        response.raise_for_status()
    return port


def aitp_config(fake_port: int) -> dict[str, Any]:
    base = f"http://{HOST}:{fake_port}/v1"
    models = [
        {"name": f"qwen-{t}", "model": f"dashscope/qwen-{t}", "tier": t, "api_base": base, "api_key": "bench-fake"}
        for t in ("turbo", "plus")
    ]
    return {"models": models, "usage": {"flush_interval_s": 0.2}}


async def start_replica(cleanup: Cleanup, workdir: Path, index: int, env: dict[str, str]) -> Replica:
    home = workdir / f"aitp-{index}"
    (home / "data").mkdir(parents=True)
    replica_env = {**env, "AITP_DATA_DIR": str(home / "data")}
    cmd = [str(VENV_BIN / "aitp"), "serve", "--host", HOST, "--port", "0"]
    log = home / "server.log"
    replica = Replica(spawn(cleanup, cmd, replica_env, log, home), log)
    replica.port = await wait_log_port(replica.proc, log, PORT_LINE, f"aitp replica {index}")
    await wait_ready(replica, index)
    return replica


async def wait_ready(replica: Replica, index: int) -> None:
    """Until /readyz answers 200 with every check ok (database, redis, llm_engine)."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    last = ""
    async with httpx.AsyncClient(timeout=5) as http:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                response = await http.get(f"{replica.url}/readyz")
                last = response.text
                checks = response.json().get("checks", {})
                if response.status_code == 200 and checks and all(v == "ok" for v in checks.values()):
                    return
            if replica.proc.poll() is not None:
                break
            await asyncio.sleep(0.2)
    raise RuntimeError(f"aitp replica {index} never became ready (last /readyz: {last}):\n{log_tail(replica.log, 30)}")


async def start_cluster(
    cleanup: Cleanup, workdir: Path, fake_port: int, database_url: str, admin_key: str
) -> list[Replica]:
    config = workdir / "aitp.yaml"
    config.write_text(yaml.safe_dump(aitp_config(fake_port)))
    assert cleanup.redis_url and cleanup.redis_prefix
    env = {
        **_base_env(),
        "AITP_ADMIN_KEY": admin_key,
        "AITP_CONFIG": str(config),
        "AITP_DATABASE_URL": database_url,
        "AITP_REDIS_URL": cleanup.redis_url,
        "AITP_REDIS_PREFIX": cleanup.redis_prefix,
        "AITP_LOG_LEVEL": "info",
    }
    first = await start_replica(cleanup, workdir, 0, env)  # runs the migrations alone
    rest = await asyncio.gather(*(start_replica(cleanup, workdir, i, env) for i in range(1, REPLICAS)))
    return [first, *rest]


# ------------------------------------------------------------ database and redis


async def create_database(cleanup: Cleanup) -> str:
    name = f"aitp_bench_{secrets.token_hex(6)}"
    conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=10)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    cleanup.database = name
    return name


def dsn(database: str, driver: str = "postgresql") -> str:
    return f"{PG_ADMIN_DSN.rsplit('/', 1)[0].replace('postgresql://', f'{driver}://')}/{database}"


async def drop_database(name: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=10)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def delete_redis_keys(url: str, prefix: str) -> int:
    client = redis.asyncio.Redis.from_url(url)
    deleted = 0
    try:
        async for key in client.scan_iter(match=prefix + "*", count=500):
            deleted += int(await client.delete(key))
    finally:
        await client.aclose()
    return deleted


async def evalsha_stats(cleanup: Cleanup) -> tuple[int, float]:
    """(calls, µs) of EVALSHA so far on the Redis server (read-only INFO; counts every client of that server)."""
    assert cleanup.redis_url
    client = redis.asyncio.Redis.from_url(cleanup.redis_url)
    try:
        stats = (await client.info("commandstats")).get("cmdstat_evalsha") or {}
    finally:
        await client.aclose()
    return int(stats.get("calls", 0)), float(stats.get("usec", 0))


async def usage_rows(database: str, project: str, expected: int) -> tuple[int, int, float]:
    """(rows, tokens, USD) of the project's ok usage rows; rows are written in batches, so poll a little."""
    conn = await asyncpg.connect(dsn(database), timeout=10)
    try:
        sql = (
            "SELECT count(*), coalesce(sum(prompt_tokens + completion_tokens), 0), coalesce(sum(cost_usd), 0) "
            "FROM usage_records WHERE project_id = $1 AND status = 'ok'"
        )
        deadline = time.monotonic() + 15
        while True:
            row = await conn.fetchrow(sql, project)
            assert row is not None
            if row[0] >= expected or time.monotonic() > deadline:
                return int(row[0]), int(row[1]), float(row[2])
            await asyncio.sleep(0.2)
    finally:
        await conn.close()


# ------------------------------------------------------------------------ CPU


def process_cpu_s(pids: list[int]) -> dict[int, float]:
    """CPU seconds used so far by each process (utime + stime from /proc/<pid>/stat)."""
    out = {}
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            out[pid] = (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
    return out


async def pg_backends(database: str) -> list[int]:
    """PIDs of the PostgreSQL backends serving the bench database (the replicas' pools)."""
    conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=10)
    try:
        return [int(r[0]) for r in await conn.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1", database)]
    finally:
        await conn.close()


async def own_cpu_s(cleanup: Cleanup, replicas: list[Replica], database: str) -> dict[str, dict[int, float]]:
    """CPU seconds so far, per role: this process (the client), the fake, the replicas, their PostgreSQL backends."""
    replica_pids = {r.proc.pid for r in replicas}
    roles = {
        "client": [os.getpid()],
        "fake": [p.pid for p in cleanup.procs if p.pid not in replica_pids],
        "replicas": sorted(replica_pids),
        "postgres": await pg_backends(database),
    }
    return {role: process_cpu_s(pids) for role, pids in roles.items()}


def cpu_delta(after: dict[str, dict[int, float]], before: dict[str, dict[int, float]]) -> dict[str, float]:
    """CPU used per role between two snapshots; a process born in between counts in full."""
    return {
        role: sum(value - before.get(role, {}).get(pid, 0.0) for pid, value in now.items())
        for role, now in after.items()
    }
