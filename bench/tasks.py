"""Task engine benchmark: submit latency, throughput on Redis, a chaos run, Redis connections.

Starts a fresh PostgreSQL database, one Redis DB index under a fresh prefix,
one ``aitp serve`` (distributed mode) and ``aitp worker`` processes, then:

1. submit latency: 50 concurrent submitters POST ``system.sleep(0)`` tasks
   (no worker running, so submits do not compete with execution); p50/p99,
   first paced (together ``--paced-rate`` submits/s, the way users submit),
   then back to back (saturation: there latency is 50 / throughput).
2. throughput: the backlog from (1) drained by ``aitp worker --processes 2``;
   tasks per second between the first claim and the last finish (database
   timestamps, so worker start-up is not counted).
3. chaos: 1,000 ``system.sleep`` tasks (0.2 to 1 s), submitted at ~50/s to two worker groups; every
   few seconds one group is killed with SIGKILL and a fresh one started. Lost
   = tasks not succeeded at the end; duplicate completions = tasks with more
   than one ``task_succeeded`` event; re-executions = executions started
   beyond one per task (the killed ones, expected).
4. peak Redis client connections, sampled every 100 ms with ``CLIENT LIST``:
   the task engine's named connections (``{prefix}:tasks:*``) and every
   connection on the benchmark's DB index.

Everything is removed at the end (processes, database, Redis keys).

Usage (from the repo root):
    .venv/bin/python bench/tasks.py            # full run
    .venv/bin/python bench/tasks.py --quick    # smaller numbers
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import redis.asyncio
import yaml

REPO = Path(__file__).resolve().parent.parent
PG_ADMIN_DSN = os.environ.get("AITP_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_BASE = "redis://127.0.0.1:6379"
PORT_LINE = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")
TASKS = {
    "lease_s": 5,
    "heartbeat_s": 1,
    "reaper_interval_s": 1,
    "pending_requeue_s": 30,
    "shutdown_grace_s": 1,
}


@dataclass
class Rig:
    tmp: Path
    env: dict[str, str]
    redis_url: str
    prefix: str
    database: str
    server: subprocess.Popen[bytes] | None = None
    base_url: str = ""
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    peak_engine: int = 0
    peak_db: int = 0


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def setup(tmp: Path) -> Rig:
    name = f"aitp_bench_{secrets.token_hex(5)}"
    admin = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    redis_url = f"{REDIS_BASE}/{random.randint(1, 15)}"
    prefix = "aitp-bench-" + secrets.token_hex(4)
    (tmp / "aitp.yaml").write_text(yaml.safe_dump({"tasks": TASKS}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AITP_")}
    env.update(
        {
            "AITP_ADMIN_KEY": "sk-aitp-bench-" + secrets.token_urlsafe(24),
            "AITP_CONFIG": str(tmp / "aitp.yaml"),
            "AITP_DATA_DIR": str(tmp / "data"),
            "AITP_DATABASE_URL": f"{base}/{name}",
            "AITP_REDIS_URL": redis_url,
            "AITP_REDIS_PREFIX": prefix,
            "AITP_LOG_LEVEL": "warning",
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "NO_PROXY": "127.0.0.1,localhost",
        }
    )
    return Rig(tmp, env, redis_url, prefix, name)


def start_server(rig: Rig) -> None:
    log = rig.tmp / "server.log"
    rig.server = subprocess.Popen(
        [sys.executable, "-m", "aitp.cli", "serve", "--port", "0"],
        cwd=rig.tmp,
        env={**rig.env, "AITP_LOG_LEVEL": "info"},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 120
    while not rig.base_url:
        match = PORT_LINE.search(log.read_text(errors="replace"))
        if match:
            rig.base_url = f"http://127.0.0.1:{match.group(1)}"
        elif rig.server.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"aitp serve did not start:\n{log.read_text()}")
        else:
            time.sleep(0.05)
    while httpx.get(f"{rig.base_url}/readyz").json()["checks"].get("llm_engine") != "ok":
        time.sleep(0.1)


def start_worker(rig: Rig, processes: int, threads: int) -> subprocess.Popen[bytes]:
    log = rig.tmp / f"worker-{len(rig.workers)}.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "aitp.cli", "worker", "--processes", str(processes), "--threads", str(threads)],
        cwd=rig.tmp,
        env={**rig.env, "AITP_LOG_LEVEL": "info"},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    rig.workers.append(process)
    deadline = time.monotonic() + 60
    while log.read_text(errors="replace").count("worker ready") < processes:
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"aitp worker did not start:\n{log.read_text()}")
        time.sleep(0.05)
    return process


def kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


async def sample_connections(rig: Rig, stop: asyncio.Event) -> None:
    client = redis.asyncio.Redis.from_url(rig.redis_url)
    db = int(rig.redis_url.rsplit("/", 1)[1])
    try:
        while not stop.is_set():
            clients = await client.client_list()
            engine = sum(1 for c in clients if c.get("name", "").startswith(f"{rig.prefix}:tasks"))
            on_db = sum(1 for c in clients if int(c.get("db", -1)) == db) - 1  # minus this sampler
            rig.peak_engine = max(rig.peak_engine, engine)
            rig.peak_db = max(rig.peak_db, on_db)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.1)
    finally:
        await client.aclose()


async def new_key(http: httpx.AsyncClient, admin_key: str) -> str:
    headers = {"authorization": f"Bearer {admin_key}"}
    project = f"bench-{secrets.token_hex(3)}"
    assert (await http.post("/api/projects", json={"name": project}, headers=headers)).status_code == 201
    created = await http.post("/api/keys", json={"project": project, "name": "bench"}, headers=headers)
    return str(created.json()["key"])


async def submit_many(
    http: httpx.AsyncClient, key: str, count: int, concurrency: int, seconds: Any, every_s: float = 0.0
) -> list[float]:
    """``count`` submissions from ``concurrency`` submitters (each one every ``every_s`` at most); latencies."""
    latencies: list[float] = []
    headers = {"authorization": f"Bearer {key}"}
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)

    async def submitter() -> None:
        await asyncio.sleep(random.uniform(0, every_s))  # paced submitters start spread out, not in one burst
        while not queue.empty():
            queue.get_nowait()
            body = {"kind": "system.sleep", "input": {"seconds": seconds() if callable(seconds) else seconds}}
            started = time.perf_counter()
            response = await http.post("/api/tasks", json=body, headers=headers)
            latencies.append(time.perf_counter() - started)
            assert response.status_code == 201, response.text
            await asyncio.sleep(max(0.0, every_s - latencies[-1]) * random.uniform(0.5, 1.5))

    await asyncio.gather(*[submitter() for _ in range(concurrency)])
    return latencies


async def wait_finished(conn: asyncpg.Connection, project: str, count: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while True:
        done = await conn.fetchval(
            "SELECT count(*) FROM tasks WHERE project_id = $1 AND status IN ('succeeded','failed','cancelled')",
            project,
        )
        if done >= count or time.monotonic() > deadline:
            return int(done)
        await asyncio.sleep(0.2)


async def project_of(http: httpx.AsyncClient, key: str) -> str:
    listing = await http.get("/api/tasks?limit=1", headers={"authorization": f"Bearer {key}"})
    return str(listing.json()["items"][0]["project"])


async def run(args: argparse.Namespace, rig: Rig) -> None:
    start_server(rig)
    stop_sampling = asyncio.Event()
    sampler = asyncio.create_task(sample_connections(rig, stop_sampling))
    db = await asyncpg.connect(PG_ADMIN_DSN.rsplit("/", 1)[0] + f"/{rig.database}")
    # Expire idle connections before uvicorn's 5 s keep-alive does, or a reused one can be closed under us.
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100, keepalive_expiry=2.0)
    async with httpx.AsyncClient(base_url=rig.base_url, timeout=60, limits=limits) as http:
        admin = rig.env["AITP_ADMIN_KEY"]

        # 1. submit latency, no worker running
        key = await new_key(http, admin)
        await submit_many(http, key, 200, 50, 0)  # warm-up: the pools open their connections, statements prepare
        paced_every = 50 / args.paced_rate
        started = time.perf_counter()
        latencies = await submit_many(http, key, args.submits // 2, 50, 0, every_s=paced_every)
        rate = len(latencies) / (time.perf_counter() - started)
        p50, p99 = _percentile(latencies, 0.5) * 1000, _percentile(latencies, 0.99) * 1000
        print(
            f"submit latency, 50 concurrent submitters each sending one task every ~{paced_every:g} s "
            f"({rate:.0f} submits/s), {len(latencies)} tasks: p50 {p50:.1f} ms, p99 {p99:.1f} ms"
        )
        print(f"  target p99 < 50 ms: {'met' if p99 < 50 else 'MISSED'}")
        started = time.perf_counter()
        latencies = await submit_many(http, key, args.submits // 2, 50, 0)
        rate = len(latencies) / (time.perf_counter() - started)
        p50, p99 = _percentile(latencies, 0.5) * 1000, _percentile(latencies, 0.99) * 1000
        print(
            f"submit saturation, 50 submitters back to back, {len(latencies)} tasks: {rate:.0f} submits/s, "
            f"p50 {p50:.1f} ms, p99 {p99:.1f} ms (latency here is queueing: 50 / throughput)"
        )

        # 2. throughput: 2 worker processes drain the backlog
        project = await project_of(http, key)
        backlog = args.submits + 200
        await asyncio.to_thread(start_worker, rig, 2, args.threads)
        await wait_finished(db, project, backlog, timeout=300)
        first, last, ok = await db.fetchrow(
            "SELECT min(started_at), max(finished_at), count(*) FILTER (WHERE status = 'succeeded') "
            "FROM tasks WHERE project_id = $1",
            project,
        )
        rate = backlog / (last - first).total_seconds()
        print(f"throughput, system.sleep(0), 2 worker processes x {args.threads} threads on Redis: {rate:.0f} tasks/s")
        print(f"  ({ok}/{backlog} succeeded; target >= 300 tasks/s: {'met' if rate >= 300 else 'MISSED'})")
        for worker in rig.workers:
            kill_group(worker)
        rig.workers.clear()

        # 3. chaos: kill a worker group every few seconds while 1,000 tasks run
        key = await new_key(http, admin)
        groups = [await asyncio.to_thread(start_worker, rig, 1, args.threads) for _ in range(2)]
        rng = random.Random(7)
        started = time.monotonic()
        # Submitted at ~50/s while workers keep dying: kills land mid-task and mid-queue.
        seconds = lambda: round(rng.uniform(0.2, 1.0), 3)  # noqa: E731
        submitting = asyncio.create_task(submit_many(http, key, args.chaos, 5, seconds, every_s=0.1))
        await asyncio.sleep(1.0)
        project = await project_of(http, key)
        kills = 0
        while not submitting.done() or await wait_finished(db, project, args.chaos, timeout=0) < args.chaos:
            if time.monotonic() - started > args.timeout:
                break
            await asyncio.sleep(args.kill_every)
            if submitting.done() and await wait_finished(db, project, args.chaos, timeout=0) >= args.chaos:
                break
            victim = groups.pop(0)
            kill_group(victim)
            kills += 1
            groups.append(await asyncio.to_thread(start_worker, rig, 1, args.threads))
        await submitting
        finished = await wait_finished(db, project, args.chaos, timeout=max(10.0, args.timeout / 2))
        elapsed = time.monotonic() - started
        succeeded = await db.fetchval(
            "SELECT count(*) FROM tasks WHERE project_id = $1 AND status = 'succeeded'", project
        )
        duplicates = await db.fetchval(
            "SELECT count(*) FROM (SELECT task_id FROM task_events WHERE project_id = $1 AND type = 'task_succeeded' "
            "GROUP BY task_id HAVING count(*) > 1) AS d",
            project,
        )
        executions = await db.fetchval(
            "SELECT count(*) FROM task_events WHERE project_id = $1 AND type = 'execution_started'", project
        )
        print(
            f"chaos: {args.chaos} tasks, {kills} SIGKILLs of a worker group (one every {args.kill_every:g} s), "
            f"{elapsed:.1f} s: lost {args.chaos - succeeded}, duplicate completions {duplicates}, "
            f"finished {finished}, re-executions after kills {executions - args.chaos}"
        )
        ok = args.chaos == succeeded and duplicates == 0
        print(f"  target 0 lost, 0 duplicate completions: {'met' if ok else 'MISSED'}")
    stop_sampling.set()
    await sampler
    await db.close()
    print(
        f"peak Redis client connections: task engine (named {rig.prefix}:tasks:*) {rig.peak_engine}, "
        f"all on the DB index {rig.peak_db} (API + up to 3 worker processes alive at once)"
    )
    print(f"  target < 30: {'met' if rig.peak_db < 30 else 'MISSED'}")


async def teardown(rig: Rig) -> None:
    for worker in rig.workers:
        kill_group(worker)
    if rig.server is not None and rig.server.poll() is None:
        rig.server.send_signal(signal.SIGTERM)
        try:
            rig.server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            rig.server.kill()
    client = redis.asyncio.Redis.from_url(rig.redis_url)
    async for key in client.scan_iter(match=rig.prefix + "*"):
        await client.delete(key)
    await client.aclose()
    admin = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{rig.database}" WITH (FORCE)')
    finally:
        await admin.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller numbers")
    parser.add_argument("--threads", type=int, default=8, help="threads per worker process")
    parser.add_argument("--kill-every", type=float, default=3.0, help="seconds between SIGKILLs in the chaos run")
    parser.add_argument("--timeout", type=float, default=240.0, help="bound on the chaos run")
    parser.add_argument("--paced-rate", type=float, default=50.0, help="submits/s offered by the paced submitters")
    args = parser.parse_args()
    args.submits = 500 if args.quick else 2000
    args.chaos = 300 if args.quick else 1000
    print(f"machine: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="aitp-bench-tasks-") as tmp:
        rig = await setup(Path(tmp))
        try:
            await run(args, rig)
        finally:
            await teardown(rig)


if __name__ == "__main__":
    asyncio.run(main())
