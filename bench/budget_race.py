"""Budget race benchmark: one block budget hit by a burst across 4 replicas.

Starts the fake upstream (tests/fakes/llm_upstream.py, 20 ms latency), a fresh
PostgreSQL database and 4 ``aitp serve`` processes sharing it and one Redis
namespace (distributed ledger). Creates a project, a member key and ONE block
budget with a small token limit AND a small USD limit (period day), then fires
400 requests at once, round-robin over the replicas, half of them streams, with
random prompts and max_tokens (fixed seed). The fake answers
``FAKE_COMPLETION_TOKENS`` completion tokens capped at max_tokens, so most
completions hit max_tokens, and counts prompt tokens as whitespace words.

It prints, side by side:
- overspend (tokens, USD) from the ledger (``/api/budgets/{id}/status``), from
  what the clients were billed (response usage, ``x-aitp-cost-usd``, the final
  stream chunk's ``aitp.cost_usd``) and from ``usage_records``;
- false refusals (defined in the output);
- the ledger's added latency, from the ``aitp_ledger_seconds`` histograms of all
  4 replicas and end to end (a paced batch with vs without a budget);
- counts, wall time, the machine's load and who used the CPU during the burst
  (this client, the fake, the replicas, their PostgreSQL backends, the rest).

Everything listens on 127.0.0.1; the run is bounded by ``--timeout``; every
child is killed and the database and Redis keys are removed at the end, also on
Ctrl-C or errors.

Usage (from the repo root):
    .venv/bin/python bench/budget_race.py            # full run (400 requests)
    .venv/bin/python bench/budget_race.py --quick    # smoke run (100 requests)
    options: --timeout S (600), --keep-logs (keep the replicas' logs), --json PATH (every burst request)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import re
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import redis.asyncio
import yaml
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"
HOST = "127.0.0.1"
PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_BASE = "redis://127.0.0.1:6379"
PORT_LINE = re.compile(rb"Uvicorn running on http://127\.0\.0\.1:(\d+)")

REPLICAS = 4
UPSTREAM_LATENCY_MS = 20.0
FAKE_MODEL = "qwen-turbo"  # what litellm sends upstream for dashscope/qwen-turbo
FAKE_COMPLETION_TOKENS = 250  # the fake's default answer length, capped at max_tokens
PRICE_IN, PRICE_OUT = 5e-8, 2e-7  # litellm's bundled dashscope/qwen-turbo prices per token
MAX_TOKENS_RANGE = (16, 400)
PROMPT_WORDS_RANGE = (5, 150)
SEED = 20240607

TARGET_FALSE_REFUSALS = 0.05
TARGET_LEDGER_MS = (2.0, 10.0)  # p50, p99
USD_EPS = 1e-9  # the ledger's own tolerance
PROMPT_MARGIN = 0.2  # aitp's budgets.prompt_token_margin default
STARTUP_TIMEOUT_S = 120.0
REQUEST_TIMEOUT_S = 120.0
VOCABULARY = (
    "login page checkout cart user password reset email token session browser mobile api endpoint regression "
    "smoke boundary value negative case expected result step precondition data table timeout retry error message "
    "field validation upload download search filter sort pagination"
)


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Sizes:
    burst: int
    limit_tokens: int
    paced_per_key: int


@dataclass(frozen=True)
class Spec:
    """One request of the burst, drawn from the seeded generator."""

    index: int
    replica: int
    stream: bool
    max_tokens: int
    prompt: str

    @property
    def prompt_words(self) -> int:
        return max(1, len(self.prompt.split()))  # as the fake counts prompt tokens

    def would_cost(self, completion_cap: int | None = None) -> tuple[int, float]:
        """(tokens, USD) this request would have been billed by the fake (``completion_cap``: worst case)."""
        completion = min(self.max_tokens, FAKE_COMPLETION_TOKENS if completion_cap is None else completion_cap)
        return self.prompt_words + completion, self.prompt_words * PRICE_IN + completion * PRICE_OUT


@dataclass
class Outcome:
    spec: Spec
    status: int = 0
    code: str | None = None  # error code when refused or failed
    unit: str | None = None  # budget_exceeded: which unit refused
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None  # as billed: x-aitp-cost-usd or the stream's aitp.cost_usd
    capped_max_tokens: int | None = None  # x-aitp-max-tokens: max_tokens shrunk to fit the budget
    latency_s: float = 0.0
    error: str | None = None  # anything that is neither served nor a 429

    @property
    def served(self) -> bool:
        return self.status == 200 and self.error is None

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class Replica:
    proc: subprocess.Popen[bytes]
    log: Path
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"


@dataclass
class Setup:
    replicas: list[Replica]
    admin_key: str
    database: str
    project: str
    key: str
    budget_id: str
    limit_tokens: int
    limit_usd: float
    paced_budget_key: str
    free_key: str


@dataclass
class Ledger:
    used_tokens: float
    used_usd: float
    reserved_tokens: float
    reserved_usd: float
    current_action: str  # what /status says the budget does now ("ok", "blocking", ...)


Hist = dict[str, dict[float, float]]  # op -> upper bound -> cumulative count (summed over replicas)


@dataclass
class Cleanup:
    """What to remove at the end, filled in as it is created."""

    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    database: str | None = None
    redis_url: str | None = None
    redis_prefix: str | None = None


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


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the child's process group, SIGKILL it if it lingers."""
    for sig, wait_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        if proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=wait_s)


async def wait_log_port(proc: subprocess.Popen[bytes], log: Path, pattern: re.Pattern[bytes], name: str) -> int:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        match = pattern.search(_read(log))
        if match:
            return int(match.group(1))
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}:\n{tail(log)}")
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{name} did not report its port in {STARTUP_TIMEOUT_S:.0f} s:\n{tail(log)}")


def _read(log: Path) -> bytes:
    return log.read_bytes()


def tail(log: Path, lines: int = 30) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    return ""


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
    raise RuntimeError(f"aitp replica {index} never became ready (last /readyz: {last}):\n{tail(replica.log)}")


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


def machine_busy_s() -> float:
    """CPU seconds spent busy on all cores since boot (/proc/stat)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


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


# ------------------------------------------------------------------- REST setup


async def api(http: httpx.AsyncClient, base: str, key: str, method: str, path: str, body: Any = None) -> Any:
    response = await http.request(method, f"{base}{path}", json=body, headers={"authorization": f"Bearer {key}"})
    if response.status_code >= 300:
        raise RuntimeError(f"{method} {path} -> {response.status_code}: {response.text}")
    return response.json()


async def new_project_key(http: httpx.AsyncClient, base: str, admin: str, project: str) -> str:
    await api(http, base, admin, "POST", "/api/projects", {"name": project})
    created = await api(http, base, admin, "POST", "/api/keys", {"project": project, "name": "bench", "role": "member"})
    return str(created["key"])


async def put_budget(http: httpx.AsyncClient, base: str, admin: str, project: str, tokens: int, usd: float) -> str:
    body = {"project": project, "period": "day", "limit_tokens": tokens, "limit_usd": usd, "action": "block"}
    return str((await api(http, base, admin, "PUT", "/api/budgets", body))["id"])


def usd_limit_for(specs: list[Spec], limit_tokens: int) -> float:
    """A USD limit that binds about as often as the token limit.

    In a burst the budget fills with reservations, so which unit runs out first is decided by the
    reservations' USD per token: the limit is the token limit times that ratio over the whole mix.
    A reservation is aitp's worst case: the prompt counted with litellm's counter plus
    ``budgets.prompt_token_margin`` (20%) and 8, plus max_tokens (README, BudgetEnforcer.prompt_estimate).
    """
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm  # slow (seconds); the caller runs this in a thread

    tokens = usd = 0.0
    for spec in specs:
        counted = litellm.token_counter(messages=chat_body(spec)["messages"])
        prompt = math.ceil(counted * (1 + PROMPT_MARGIN)) + 8
        tokens += prompt + spec.max_tokens
        usd += prompt * PRICE_IN + spec.max_tokens * PRICE_OUT
    return round(limit_tokens * usd / tokens, 7)


# ------------------------------------------------------------------- requests


def make_specs(count: int, seed: int) -> list[Spec]:
    rng = random.Random(seed)
    vocabulary = VOCABULARY.split()
    specs = []
    for i in range(count):
        words = " ".join(rng.choice(vocabulary) for _ in range(rng.randint(*PROMPT_WORDS_RANGE)))
        stream = rng.random() < 0.5
        specs.append(Spec(i, i % REPLICAS, stream, rng.randint(*MAX_TOKENS_RANGE), f"write test cases for: {words}"))
    return specs


def chat_body(spec: Spec) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "turbo",
        "messages": [{"role": "user", "content": spec.prompt}],
        "max_tokens": spec.max_tokens,
    }
    if spec.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def read_refusal(out: Outcome, status: int, raw: bytes) -> None:
    out.status = status
    try:
        error = json.loads(raw)["error"]
        out.code, out.unit = error.get("code"), error.get("unit")
    except (ValueError, KeyError, TypeError):
        out.code = None
    if status != 429:
        out.error = f"HTTP {status}: {raw[:500].decode(errors='replace')}"


def read_usage(out: Outcome, data: dict[str, Any], cost: Any) -> None:
    usage = data.get("usage") or {}
    out.prompt_tokens = int(usage.get("prompt_tokens") or 0)
    out.completion_tokens = int(usage.get("completion_tokens") or 0)
    with contextlib.suppress(TypeError, ValueError):
        out.cost_usd = float(cost)


async def read_stream(out: Outcome, response: httpx.Response) -> None:
    got_usage = done = False
    async for line in response.aiter_lines():
        if not line.startswith("data: "):
            continue
        payload = line[6:]
        if payload == "[DONE]":
            done = True
            continue
        data = json.loads(payload)
        if "error" in data:
            out.error = f"error event in a 200 stream: {payload[:500]}"
        elif data.get("usage"):
            got_usage = True
            read_usage(out, data, (data.get("aitp") or {}).get("cost_usd"))
    if out.error is None and not (got_usage and done):
        out.error = f"stream ended without {'[DONE]' if got_usage else 'a usage chunk'}"


async def send(http: httpx.AsyncClient, base: str, key: str, spec: Spec) -> Outcome:
    out = Outcome(spec)
    headers = {"authorization": f"Bearer {key}"}
    started = time.perf_counter()
    try:
        async with http.stream("POST", f"{base}/v1/chat/completions", json=chat_body(spec), headers=headers) as resp:
            if resp.status_code != 200:
                read_refusal(out, resp.status_code, await resp.aread())
            else:
                out.status = 200
                capped = resp.headers.get("x-aitp-max-tokens")
                out.capped_max_tokens = int(capped) if capped else None
                if spec.stream:
                    await read_stream(out, resp)
                else:
                    read_usage(out, json.loads(await resp.aread()), resp.headers.get("x-aitp-cost-usd"))
    except (httpx.HTTPError, ValueError) as exc:
        out.error = f"{type(exc).__name__}: {exc}"
    out.latency_s = time.perf_counter() - started
    return out


def client(connections: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S, limits=limits)


async def warm_up(replicas: list[Replica], keys: list[str]) -> None:
    """First calls load lazy parts (litellm paths, the token counter); keep them out of the measurements."""
    specs = [Spec(-1, 0, stream, 16, "warm up the gateway please") for stream in (False, True)]
    async with client(32) as http:
        calls = [send(http, r.url, k, s) for r in replicas for k in keys for s in specs]
        for out in await asyncio.gather(*calls):
            if not out.served:
                raise RuntimeError(f"warm-up request failed: {out.status} {out.code} {out.error}")


async def burst(setup: Setup, specs: list[Spec]) -> tuple[list[Outcome], float]:
    async with client(len(specs) + 8) as http:
        started = time.perf_counter()
        outcomes = await asyncio.gather(*(send(http, setup.replicas[s.replica].url, setup.key, s) for s in specs))
        return list(outcomes), time.perf_counter() - started


async def paced(setup: Setup, per_key: int) -> dict[str, list[float]]:
    """Sequential non-stream requests, alternating a budgeted key and a key without any budget."""
    keys = {"budget": setup.paced_budget_key, "no budget": setup.free_key}
    latencies: dict[str, list[float]] = {name: [] for name in keys}
    async with client(8) as http:
        for i in range(per_key):
            order = list(keys) if i % 2 == 0 else list(reversed(keys))
            replica = setup.replicas[i % REPLICAS]
            for name in order:
                out = await send(http, replica.url, keys[name], Spec(i, 0, False, 32, "list three boundary values"))
                if not out.served:
                    raise RuntimeError(f"paced request failed: {out.status} {out.code} {out.error}")
                latencies[name].append(out.latency_s * 1000)
    return latencies


# ---------------------------------------------------------------------- ledger


async def ledger_state(http: httpx.AsyncClient, setup: Setup) -> Ledger:
    """The budget's status once every reservation is settled (streams settle just after [DONE])."""
    deadline = time.monotonic() + 15
    while True:
        doc = await api(http, setup.replicas[0].url, setup.admin_key, "GET", f"/api/budgets/{setup.budget_id}/status")
        status = doc["status"]
        tokens, usd = status["tokens"], status["usd"]
        state = Ledger(tokens["used"], usd["used"], tokens["reserved"], usd["reserved"], status["current_action"])
        if (state.reserved_tokens == 0 and state.reserved_usd < 1e-12) or time.monotonic() > deadline:
            return state
        await asyncio.sleep(0.2)


async def scrape(replicas: list[Replica]) -> Hist:
    """``aitp_ledger_seconds`` buckets summed over the replicas."""
    hist: Hist = {}
    async with httpx.AsyncClient(timeout=10) as http:
        for replica in replicas:
            text = (await http.get(f"{replica.url}/metrics")).text
            for family in text_string_to_metric_families(text):
                if family.name != "aitp_ledger_seconds":
                    continue
                for sample in family.samples:
                    if sample.name.endswith("_bucket"):
                        buckets = hist.setdefault(sample.labels["op"], {})
                        le = float(sample.labels["le"])
                        buckets[le] = buckets.get(le, 0.0) + sample.value
    return hist


def hist_delta(after: Hist, before: Hist) -> Hist:
    return {
        op: {le: count - before.get(op, {}).get(le, 0.0) for le, count in buckets.items()}
        for op, buckets in after.items()
    }


def hist_quantile(buckets: dict[float, float], q: float) -> tuple[float | None, bool]:
    """Like PromQL's histogram_quantile: linear inside the bucket. Returns (seconds, beyond the last bound)."""
    ordered = sorted(buckets.items())
    total = ordered[-1][1] if ordered else 0.0
    if total <= 0:
        return None, False
    rank = q * total
    low, below = 0.0, 0.0
    for le, cumulative in ordered:
        if cumulative >= rank:
            if math.isinf(le):
                return low, True
            if cumulative == below:
                return le, False
            return low + (le - low) * (rank - below) / (cumulative - below), False
        low, below = le, cumulative
    return low, True


def hist_count(buckets: dict[float, float]) -> int:
    return int(buckets.get(math.inf, 0.0))


# -------------------------------------------------------------------- analysis


@dataclass
class FalseRefusals:
    refused: int
    fit_actual: int  # refused requests whose actual cost fits the unspent remainder (greedy, smallest first)
    fit_worst: int  # ... even at their full max_tokens
    room_tokens: float
    room_usd: float


def greedy_fit(specs: list[Spec], room_tokens: float, room_usd: float, limits: tuple[float, float], worst: bool) -> int:
    costs = [s.would_cost(s.max_tokens if worst else None) for s in specs]
    costs.sort(key=lambda c: max(c[0] / limits[0], c[1] / limits[1]))
    fitted = 0
    for tokens, usd in costs:
        if tokens <= room_tokens and usd <= room_usd + USD_EPS:
            room_tokens, room_usd, fitted = room_tokens - tokens, room_usd - usd, fitted + 1
    return fitted


def false_refusals(outcomes: list[Outcome], setup: Setup, ledger: Ledger) -> FalseRefusals:
    refused = [o.spec for o in outcomes if o.code == "budget_exceeded"]
    room_t = max(0.0, setup.limit_tokens - ledger.used_tokens)
    room_u = max(0.0, setup.limit_usd - ledger.used_usd)
    limits = (float(setup.limit_tokens), setup.limit_usd)
    return FalseRefusals(
        refused=len(refused),
        fit_actual=greedy_fit(refused, room_t, room_u, limits, worst=False),
        fit_worst=greedy_fit(refused, room_t, room_u, limits, worst=True),
        room_tokens=room_t,
        room_usd=room_u,
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    pos = (len(ordered) - 1) * q
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def price_mismatches(outcomes: list[Outcome]) -> list[str]:
    """Served responses whose billed cost is not tokens x litellm's qwen-turbo price (or is missing)."""
    bad = []
    for o in outcomes:
        if not o.served:
            continue
        expected = o.prompt_tokens * PRICE_IN + o.completion_tokens * PRICE_OUT
        if o.cost_usd is None or abs(o.cost_usd - expected) > 1e-9:
            bad.append(f"#{o.spec.index} billed {o.cost_usd} for {o.prompt_tokens}+{o.completion_tokens} tokens")
    return bad


def usage_mismatches(outcomes: list[Outcome]) -> list[str]:
    """Served responses whose usage is not what the fake should have answered (prompt words, capped completion)."""
    bad = []
    for o in outcomes:
        if not o.served:
            continue
        cap = o.capped_max_tokens or o.spec.max_tokens
        want = (o.spec.prompt_words, min(cap, FAKE_COMPLETION_TOKENS))
        if (o.prompt_tokens, o.completion_tokens) != want:
            bad.append(f"#{o.spec.index} usage {o.prompt_tokens}+{o.completion_tokens}, expected {want[0]}+{want[1]}")
    return bad


# ---------------------------------------------------------------------- report


def fmt(value: float | None, digits: int = 2) -> str:
    if value is None or value != value:
        return "-"
    return f"{value:.{digits}f}"


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=True)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))

    return "\n".join([line(headers), "  ".join("-" * w for w in widths), *(line(r) for r in rows)])


def verdict(met: bool | None) -> str:
    return {True: "met", False: "NOT MET", None: "n/a"}[met]


def overspend_rows(r: Results, billed: tuple[int, float]) -> list[list[str]]:
    setup, ledger, db = r.setup, r.ledger, r.db
    rows = []
    for unit, limit, sources in (
        ("tokens", float(setup.limit_tokens), [ledger.used_tokens, float(billed[0]), float(db[1])]),
        ("USD", setup.limit_usd, [ledger.used_usd, billed[1], db[2]]),
    ):
        digits = 0 if unit == "tokens" else 8
        eps = 0.0 if unit == "tokens" else USD_EPS
        for name, used in zip(("ledger status", "clients billed", "usage_records"), sources, strict=True):
            over = max(0.0, used - limit)
            rows.append(
                [f"{unit}: {name}", fmt(limit, digits), fmt(used, digits), fmt(over, digits), verdict(over <= eps)]
            )
    return rows


def latency_rows(label: str, hist: Hist) -> list[list[str]]:
    rows = []
    for op in ("reserve", "settle"):
        buckets = hist.get(op, {})
        cells = [f"{label}: {op}", str(hist_count(buckets))]
        for q in (0.5, 0.99):
            value, beyond = hist_quantile(buckets, q)
            cells.append((">" if beyond else "") + fmt(None if value is None else value * 1000, 3))
        rows.append(cells)
    return rows


def ledger_sum(hist: Hist, q: float) -> float | None:
    parts = [hist_quantile(hist.get(op, {}), q)[0] for op in ("reserve", "settle")]
    return None if any(p is None for p in parts) else sum(p for p in parts if p is not None) * 1000


def log_lines(replicas: list[Replica]) -> tuple[list[str], int]:
    """Server log lines at warning or above, or with a traceback; and the count of expected budget alerts."""
    found, alerts = [], 0
    for i, replica in enumerate(replicas):
        for line in replica.log.read_text(errors="replace").splitlines():
            if not re.search(r'"level": ?"(warning|error|critical)"|Traceback', line, re.IGNORECASE):
                continue
            if '"logger":"aitp.budgets.alerts"' in line and "crossed" in line:
                alerts += 1
            else:
                found.append(f"[replica {i}] {line[:600]}")
    return found, alerts


@dataclass
class Results:
    setup: Setup
    outcomes: list[Outcome]
    wall_s: float
    ledger: Ledger
    db: tuple[int, int, float]
    burst_hist: Hist
    paced_hist: Hist
    paced_ms: dict[str, list[float]]
    redis_evalsha: tuple[int, float]  # (scripts run, server-side µs) during the burst, whole Redis server
    burst_cpu_pct: dict[str, float]  # per role (client, fake, replicas, postgres, other), in % of one core
    load_start: tuple[float, float, float]
    logs: tuple[list[str], int]

    @property
    def served(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.served]

    @property
    def billed(self) -> tuple[int, float]:
        return sum(o.tokens for o in self.served), sum(o.cost_usd or 0.0 for o in self.served)

    def e2e(self, q: float) -> float:
        return percentile(self.paced_ms["budget"], q) - percentile(self.paced_ms["no budget"], q)

    def paired_median(self) -> float:
        """Median of (budgeted - unbudgeted) over the interleaved pairs: robust to drift in the machine's load."""
        pairs = zip(self.paced_ms["budget"], self.paced_ms["no budget"], strict=True)
        return statistics.median(a - b for a, b in pairs)


def _row(figure: str, measured: str, target: str, met: bool | None) -> list[str]:
    return [figure, measured, target, verdict(met)]


def ledger_rows(r: Results) -> list[list[str]]:
    """Reserve + settle from the histograms, per phase and percentile, against the targets."""
    rows = []
    for phase, hist in (("burst", r.burst_hist), ("paced", r.paced_hist)):
        for q, target in zip((0.5, 0.99), TARGET_LEDGER_MS, strict=True):
            value = ledger_sum(hist, q)
            pct = f"p{q * 100:g}"
            rows.append(
                _row(
                    f"ledger {pct} ~ reserve {pct} + settle {pct} ({phase}, histograms)",
                    f"{fmt(value, 3)} ms",
                    f"<= {target:g} ms",
                    None if value is None else value <= target,
                )
            )
    return rows


def summary_rows(r: Results, fr: FalseRefusals) -> list[list[str]]:
    setup, ledger = r.setup, r.ledger
    billed, total = r.billed, len(r.outcomes)
    share = fr.fit_actual / total if total else 0.0
    over_t = (max(0.0, ledger.used_tokens - setup.limit_tokens), max(0.0, billed[0] - setup.limit_tokens))
    over_u = (max(0.0, ledger.used_usd - setup.limit_usd), max(0.0, billed[1] - setup.limit_usd))
    p50_ms, p99_ms = TARGET_LEDGER_MS
    errors = sum(o.error is not None for o in r.outcomes)
    return [
        _row("overspend tokens (ledger | clients)", f"{over_t[0]:.0f} | {over_t[1]:.0f}", "0", max(over_t) == 0),
        _row(
            "overspend USD (ledger | clients)",
            f"{over_u[0]:.8f} | {over_u[1]:.8f}",
            "0",
            max(over_u) <= USD_EPS,
        ),
        _row(
            "false refusals (share of all requests)",
            f"{share:.1%} ({fr.fit_actual}/{total})",
            f"<= {TARGET_FALSE_REFUSALS:.0%}",
            share <= TARGET_FALSE_REFUSALS,
        ),
        *ledger_rows(r),
        _row(
            "added p50, end to end (paced, budget - none)",
            f"{r.e2e(0.5):.2f} ms",
            f"<= {p50_ms:g} ms",
            r.e2e(0.5) <= p50_ms,
        ),
        _row(
            "added p99, end to end (paced, budget - none)",
            f"{r.e2e(0.99):.2f} ms",
            f"<= {p99_ms:g} ms",
            r.e2e(0.99) <= p99_ms,
        ),
        _row(
            "added, median of paired differences (paced)",
            f"{r.paired_median():.2f} ms",
            f"<= {p50_ms:g} ms",
            r.paired_median() <= p50_ms,
        ),
        _row("other errors (neither 200 nor 429)", str(errors), "0", errors == 0),
    ]


def print_header(r: Results) -> None:
    setup = r.setup
    print("\n================ budget race results ================")
    print(
        f"machine: nproc {os.cpu_count()}, load average at start {' '.join(f'{x:.2f}' for x in r.load_start)}, "
        f"at end {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {REPLICAS} aitp replicas on one PostgreSQL "
        f"database + Redis; fake upstream {UPSTREAM_LATENCY_MS:g} ms; client, fake and replicas share the machine"
    )
    print(
        f"budget: one block budget, period day, {setup.limit_tokens} tokens and ${setup.limit_usd:.7f}; "
        f"{len(r.outcomes)} requests at once, round-robin over the replicas, ~half streams (seed {SEED}), "
        f"max_tokens {MAX_TOKENS_RANGE[0]}..{MAX_TOKENS_RANGE[1]}, prompts {PROMPT_WORDS_RANGE[0]}+4.."
        f"{PROMPT_WORDS_RANGE[1]}+4 words; the fake answers min(max_tokens, {FAKE_COMPLETION_TOKENS}) tokens"
    )
    cpu = ", ".join(f"{role} {pct:.0f}%" for role, pct in r.burst_cpu_pct.items())
    print(
        f"CPU during the burst, in % of one core ({os.cpu_count()} cores = {100 * (os.cpu_count() or 1)}): {cpu} "
        "(client = this process; postgres = the replicas' backends; other = Redis and every other job)"
    )
    if r.ledger.reserved_tokens or r.ledger.reserved_usd > 1e-12:
        print(f"WARNING: reservations still open 15 s after the burst: {r.ledger}")


def print_overspend(r: Results) -> None:
    print("\noverspend = max(0, used - limit), from three independent sources")
    print(table(["source", "limit", "used", "overspend", "verdict"], overspend_rows(r, r.billed)))
    print(f"usage_records: {r.db[0]} ok rows for {len(r.served)} served requests")
    setup, ledger = r.setup, r.ledger
    left_t, left_u = setup.limit_tokens - ledger.used_tokens, setup.limit_usd - ledger.used_usd
    print(
        f"left unspent: {left_t:.0f} tokens ({left_t / setup.limit_tokens:.2%}) and ${left_u:.8f} "
        f"({left_u / setup.limit_usd:.2%}); a refusal names the first unit (tokens, then USD) that cannot take the "
        f"request's worst case; /status says current_action={ledger.current_action!r} after the burst"
    )


def print_false_refusals(fr: FalseRefusals, total: int) -> None:
    print("\nfalse refusals")
    print(
        "definition: after the burst, the unspent remainder of the budget (limit - used, per the ledger: "
        f"{fr.room_tokens:.0f} tokens and ${fr.room_usd:.8f}) is filled greedily with the refused requests' "
        f"would-be actual costs (prompt words + min(max_tokens, {FAKE_COMPLETION_TOKENS}) tokens, at "
        f"${PRICE_IN:g} / ${PRICE_OUT:g} per prompt / completion token), smallest first (by the larger of its two "
        "shares of the limits); those that fit in both units could have been afforded. Share = those / all requests."
    )
    print(
        f"refused (budget_exceeded): {fr.refused}; could have been afforded: {fr.fit_actual} "
        f"({fr.fit_actual / total if total else 0:.1%} of all, "
        f"{fr.fit_actual / fr.refused if fr.refused else 0:.1%} of the refused); "
        f"even with their full max_tokens as completion: {fr.fit_worst}"
    )


def print_latency(r: Results) -> None:
    print("\nledger latency from aitp_ledger_seconds, all replicas summed. Percentiles are interpolated linearly")
    print("inside the histogram buckets (like PromQL histogram_quantile); '>' = beyond the last bound. Reserve also")
    print("counts refused attempts. The histograms hold no per-request reserve+settle, so the summary adds the")
    print("separate percentiles: an estimate, not the percentile of the sum. Burst = the 429-heavy burst above")
    print("(event loops saturated); paced = the sequential batch below (idle loops).")
    rows = latency_rows("burst", r.burst_hist) + latency_rows("paced", r.paced_hist)
    print(table(["phase: op", "observations", "p50 ms", "p99 ms"], rows))
    calls, usec = r.redis_evalsha
    if calls:
        print(
            f"Redis itself during the burst: {calls} scripts (EVALSHA, every client of this Redis server), "
            f"{usec / calls:.1f} µs each on average inside Redis"
        )
    budget, free = r.paced_ms["budget"], r.paced_ms["no budget"]
    print(f"\nend to end, paced: {len(budget)} sequential non-stream requests per key (max_tokens 32), the two keys")
    print("interleaved, round-robin over the replicas; the budgeted key's project has one large block budget")
    rows = [
        [k, fmt(percentile(ms, 0.5)), fmt(percentile(ms, 0.99)), fmt(statistics.fmean(ms))]
        for k, ms in r.paced_ms.items()
    ]
    rows.append(
        ["difference", fmt(r.e2e(0.5)), fmt(r.e2e(0.99)), fmt(statistics.fmean(budget) - statistics.fmean(free))]
    )
    print(table(["key", "p50 ms", "p99 ms", "mean ms"], rows))
    print(f"median of the {len(budget)} paired differences (same replica, back to back): {r.paired_median():.2f} ms")


def print_counts(r: Results) -> None:
    refused = Counter(f"{o.code}/{o.unit}" if o.unit else str(o.code) for o in r.outcomes if o.status == 429)
    rows = []
    for mode, stream in (("non-stream", False), ("stream", True)):
        mine = [o for o in r.outcomes if o.spec.stream == stream]
        counts = (
            len(mine),
            sum(o.served for o in mine),
            sum(o.status == 429 for o in mine),
            sum(o.error is not None for o in mine),
            sum(o.served and o.capped_max_tokens is not None for o in mine),
        )
        rows.append([mode, *map(str, counts)])
    print("\ncounts")
    print(table(["mode", "sent", "served", "refused 429", "other errors", "served with max_tokens shrunk"], rows))
    print("refused by type: " + (", ".join(f"{k}: {v}" for k, v in sorted(refused.items())) or "none"))
    lat = [o.latency_s * 1000 for o in r.served]
    ref = [o.latency_s * 1000 for o in r.outcomes if o.status == 429]
    print(
        f"client latency in the burst: served p50 {fmt(percentile(lat, 0.5), 0)} / p99 {fmt(percentile(lat, 0.99), 0)}"
        f" ms, refused p50 {fmt(percentile(ref, 0.5), 0)} / p99 {fmt(percentile(ref, 0.99), 0)} ms; "
        f"wall time {r.wall_s:.2f} s for {len(r.outcomes)} requests"
    )
    for body, count in Counter(o.error for o in r.outcomes if o.error).most_common(20):
        print(f"  other error x{count}: {body}")


def print_sanity(r: Results) -> None:
    checks = price_mismatches(r.outcomes) + usage_mismatches(r.outcomes)
    print(f"\nsanity: {len(checks)} served responses with unexpected usage or billed cost")
    for line in checks[:10]:
        print("  " + line)
    lines, alerts = r.logs
    print(f"server logs: {alerts} budget threshold alerts (expected), {len(lines)} other lines at warning or above")
    for line in lines[:15]:
        print("  " + line)


def print_report(r: Results) -> None:
    fr = false_refusals(r.outcomes, r.setup, r.ledger)
    print_header(r)
    print("\nsummary")
    print(table(["figure", "measured", "target", "verdict"], summary_rows(r, fr)))
    print_overspend(r)
    print_false_refusals(fr, len(r.outcomes))
    print_latency(r)
    print_counts(r)
    print_sanity(r)


# ------------------------------------------------------------------------ main


async def prepare(cleanup: Cleanup, workdir: Path, sizes: Sizes, specs: list[Spec]) -> Setup:
    database = await create_database(cleanup)
    cleanup.redis_url = f"{REDIS_BASE}/{random.SystemRandom().randint(1, 15)}"
    cleanup.redis_prefix = f"aitp-bench-{secrets.token_hex(6)}"
    fake_port = await start_fake(cleanup, workdir)
    limit = asyncio.ensure_future(asyncio.to_thread(usd_limit_for, specs, sizes.limit_tokens))
    admin = "sk-aitp-bench-admin-" + secrets.token_urlsafe(32)
    replicas = await start_cluster(cleanup, workdir, fake_port, dsn(database, "postgresql+asyncpg"), admin)
    base = replicas[0].url
    limit_usd = await limit
    async with httpx.AsyncClient(timeout=30) as http:
        key = await new_project_key(http, base, admin, "race")
        budget_id = await put_budget(http, base, admin, "race", sizes.limit_tokens, limit_usd)
        paced_key = await new_project_key(http, base, admin, "paced-budget")
        await put_budget(http, base, admin, "paced-budget", 10**9, 1e6)
        free_key = await new_project_key(http, base, admin, "paced-free")
    return Setup(replicas, admin, database, "race", key, budget_id, sizes.limit_tokens, limit_usd, paced_key, free_key)


async def run(sizes: Sizes, workdir: Path, cleanup: Cleanup) -> Results:
    load_start = os.getloadavg()
    specs = make_specs(sizes.burst, SEED)
    print(f"starting the fake upstream, a PostgreSQL database and {REPLICAS} aitp replicas ...", flush=True)
    t0 = time.monotonic()
    setup = await prepare(cleanup, workdir, sizes, specs)
    print(f"  ready in {time.monotonic() - t0:.1f} s (ports {[r.port for r in setup.replicas]})", flush=True)
    await warm_up(setup.replicas, [setup.free_key, setup.paced_budget_key])
    before = await scrape(setup.replicas)
    redis_before = await evalsha_stats(cleanup)
    print(f"burst: {len(specs)} requests at once ...", flush=True)
    own0, machine0 = await own_cpu_s(cleanup, setup.replicas, setup.database), machine_busy_s()
    outcomes, wall = await burst(setup, specs)
    machine = machine_busy_s() - machine0
    own = cpu_delta(await own_cpu_s(cleanup, setup.replicas, setup.database), own0)
    own["other"] = max(0.0, machine - sum(own.values()))
    async with httpx.AsyncClient(timeout=30) as http:
        ledger = await ledger_state(http, setup)
    after_burst = await scrape(setup.replicas)
    redis_after = await evalsha_stats(cleanup)
    served = sum(o.served for o in outcomes)
    db = await usage_rows(setup.database, setup.project, served)
    print(f"  {served} served in {wall:.2f} s; paced: {sizes.paced_per_key} requests per key ...", flush=True)
    paced_ms = await paced(setup, sizes.paced_per_key)
    after_paced = await scrape(setup.replicas)
    return Results(
        setup=setup,
        outcomes=outcomes,
        wall_s=wall,
        ledger=ledger,
        db=db,
        burst_hist=hist_delta(after_burst, before),
        paced_hist=hist_delta(after_paced, after_burst),
        paced_ms=paced_ms,
        redis_evalsha=(redis_after[0] - redis_before[0], redis_after[1] - redis_before[1]),
        burst_cpu_pct={role: 100 * cpu / wall for role, cpu in own.items()},
        load_start=load_start,
        logs=log_lines(setup.replicas),
    )


async def clean(cleanup: Cleanup) -> None:
    for proc in reversed(cleanup.procs):
        await asyncio.to_thread(stop, proc)
    if cleanup.database:
        try:
            await drop_database(cleanup.database)
        except (OSError, asyncpg.PostgresError) as exc:
            print(f"WARNING: could not drop database {cleanup.database}: {exc}", file=sys.stderr)
    if cleanup.redis_url and cleanup.redis_prefix:
        try:
            await delete_redis_keys(cleanup.redis_url, cleanup.redis_prefix)
        except (OSError, redis.RedisError) as exc:
            print(f"WARNING: could not delete Redis keys {cleanup.redis_prefix}*: {exc}", file=sys.stderr)


async def amain(sizes: Sizes, timeout_s: float, keep_logs: bool, dump: Path | None) -> int:
    task = asyncio.current_task()
    assert task is not None
    terminated: list[bool] = []

    def on_sigterm() -> None:
        terminated.append(True)
        task.cancel()

    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, on_sigterm)
    cleanup = Cleanup()
    workdir = Path(tempfile.mkdtemp(prefix="aitp-budget-race-"))
    started = time.monotonic()
    try:
        async with asyncio.timeout(timeout_s):
            results = await run(sizes, workdir, cleanup)
        print_report(results)
        if dump is not None:
            write_outcomes(dump, results.outcomes)
            print(f"\nwrote every burst request's outcome to {dump}")
        return 0
    except TimeoutError:
        print(f"\nABORTED: the run took longer than {timeout_s:.0f} s", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        print(f"\nFAILED: {exc}", file=sys.stderr)
        return 1
    except asyncio.CancelledError:
        if not terminated:
            raise  # Ctrl-C: asyncio.run turns it into KeyboardInterrupt
        print("\nterminated (SIGTERM)", file=sys.stderr)
        return 143
    finally:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(clean(cleanup))
        if keep_logs:
            print(f"logs kept in {workdir}")
        else:
            await asyncio.to_thread(_rmtree, workdir)
        print(f"\ntotal time {time.monotonic() - started:.0f} s (setup, burst, paced batch and cleanup)")


def write_outcomes(path: Path, outcomes: list[Outcome]) -> None:
    """Every burst request and what it got, for a closer look."""
    rows = [
        {
            "index": o.spec.index,
            "replica": o.spec.replica,
            "stream": o.spec.stream,
            "max_tokens": o.spec.max_tokens,
            "prompt_words": o.spec.prompt_words,
            "status": o.status,
            "code": o.code,
            "unit": o.unit,
            "prompt_tokens": o.prompt_tokens,
            "completion_tokens": o.completion_tokens,
            "cost_usd": o.cost_usd,
            "capped_max_tokens": o.capped_max_tokens,
            "latency_ms": round(o.latency_s * 1000, 2),
            "error": o.error,
        }
        for o in outcomes
    ]
    path.write_text(json.dumps(rows, indent=1) + "\n")


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 100 requests, 50 paced per key")
    parser.add_argument("--timeout", type=float, default=600.0, help="bound on the whole run, seconds (600)")
    parser.add_argument("--keep-logs", action="store_true", help="keep the server logs and print where")
    parser.add_argument("--json", type=Path, help="write every burst request's outcome to this file")
    return parser.parse_args(argv)


@contextlib.contextmanager
def ctrl_c_ends_the_run() -> Iterator[None]:
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    sizes = Sizes(100, 5_000, 50) if args.quick else Sizes(400, 20_000, 200)
    try:
        with ctrl_c_ends_the_run():
            code = asyncio.run(amain(sizes, args.timeout, args.keep_logs, args.json))
    except KeyboardInterrupt:
        print("\ninterrupted; children stopped, database and Redis keys removed", flush=True)
        code = 130
    raise SystemExit(code)


if __name__ == "__main__":
    main()
