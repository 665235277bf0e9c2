"""Gateway overhead benchmark: direct upstream vs aitp vs LiteLLM proxy.

Starts the fake upstream (tests/fakes/llm_upstream.py) once per upstream latency
(0 ms and 50 ms), then sends the same load directly to it, through aitp (one
uvicorn worker) and through LiteLLM proxy (one worker, its own venv in
bench/.venv-litellm-proxy, master key set, no database). For each leg it
measures throughput and latency at concurrency 1 and 50, non-stream and stream,
the RSS of the server after the load and the time from spawn to the first
answered chat completion. It prints the figures side by side, the ratios aitp vs
proxy, and a table of the issue's targets, and writes everything as JSON to
bench/results/gateway_overhead.json.

The load generator runs in its own process (this file with a hidden
``--loadgen`` option) on aiohttp + uvloop with keep-alive connections, warmed up
before each measured phase. Non-stream latency is taken when the whole body has
been read, stream latency when ``data: [DONE]`` arrives. Added latency is the
gateway's percentile minus the direct percentile at the same concurrency and
upstream latency. Each phase also reports the CPU used (in % of one core) by the
load generator, by the processes under test (fake upstream + gateway) and by
everything else on the machine, so a client bottleneck or a noisy neighbour
shows. Everything listens on 127.0.0.1, every request loop is bounded in count
and time, and every child is killed at the end, also on Ctrl-C or errors.

This machine sets PYTHONDONTWRITEBYTECODE, so the bench compiles the bytecode of
both venvs first (as pip or a container build would); otherwise each start would
compile litellm from source and the first-answer times would mostly measure that.

Usage (from the repo root):
    .venv/bin/python bench/gateway_overhead.py            # full run
    .venv/bin/python bench/gateway_overhead.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import platform
import resource
import secrets
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"
PROXY_VENV = REPO / "bench" / ".venv-litellm-proxy"
RESULTS = REPO / "bench" / "results" / "gateway_overhead.json"
LITELLM_VERSION = "1.106.2"
HOST = "127.0.0.1"
CHAT_PATH = "/v1/chat/completions"
PROMPT = "Say hello to the gateway benchmark."

DIRECT, AITP, PROXY = "direct", "aitp", "litellm-proxy"
NON_STREAM, STREAM = "non-stream", "stream"
TARGET_NAMES = (DIRECT, AITP, PROXY)

# Keeps litellm (library and proxy) from fetching anything off this machine at start.
OFFLINE_ENV = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS": "True",
    "LITELLM_LOCAL_BLOG_POSTS": "True",
    "LITELLM_LOCAL_POLICY_TEMPLATES": "True",
    "LITELLM_LOCAL_AUTOROUTER_PRESETS": "True",
    "NO_DOCS": "True",
    "NO_REDOC": "True",
}


# The measurements of LiteLLM proxy 1.106.2 on this machine (one worker).
@dataclass(frozen=True)
class Reference:
    proxy_added_c1_ms: dict[str, tuple[float, float]]  # mode -> (p50, p99)
    proxy_rps_c50: dict[str, float]
    direct_rps_c50: dict[str, float]
    proxy_rss_mb: float
    proxy_startup_s: float


REFERENCE = Reference(
    proxy_added_c1_ms={"non-stream": (11.0, 17.6), "stream": (16.9, 25.6)},
    proxy_rps_c50={"non-stream": 113.0, "stream": 57.0},
    direct_rps_c50={"non-stream": 415.0, "stream": 373.0},
    proxy_rss_mb=405.0,
    proxy_startup_s=5.0,
)
TARGET_ADDED_C1_MS = {NON_STREAM: (3.0, 6.0), STREAM: (4.0, 8.0)}
TARGET_RPS_RATIO = 1.5
TARGET_RSS_MB = 250.0

STARTUP_TIMEOUT_S = 180.0
REQUEST_TIMEOUT_S = 60.0
PHASE_TIMEOUT_S = 900.0
NOISY_OTHER_CPU_PCT = 15.0
MIN_WALL_FOR_CPU_S = 1.0  # CPU is counted in 10 ms ticks: shorter phases give no useful percentages


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Sizes:
    seq: int  # requests per mode at concurrency 1
    non_stream: int  # requests at the high concurrency
    stream: int
    concurrency: int

    def count(self, mode: str, concurrency: int) -> int:
        if concurrency == 1:
            return self.seq
        return self.stream if mode == STREAM else self.non_stream

    def warmup(self, concurrency: int) -> int:
        return 20 if concurrency == 1 else max(concurrency, 100)


@dataclass
class Phase:
    mode: str
    concurrency: int
    requests: int
    ok: int
    errors: int
    wall_s: float
    rps: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    client_cpu_pct: float  # the load generator, % of one core
    servers_cpu_pct: float  # fake upstream + gateway
    other_cpu_pct: float  # everything else on the machine: noise
    error_samples: list[str] = field(default_factory=list)

    def cpu_summary(self) -> str:
        """client/servers/other CPU in % of one core, or '-' when the phase was too short to tell."""
        if self.wall_s < MIN_WALL_FOR_CPU_S:
            return "-"
        return f"{self.client_cpu_pct:.0f}/{self.servers_cpu_pct:.0f}/{self.other_cpu_pct:.0f}"


@dataclass
class LegResult:
    target: str
    latency_ms: float
    startup_s: float | None = None
    rss_mb: float | None = None
    phases: list[Phase] = field(default_factory=list)
    error: str | None = None
    log_tail: str | None = None  # the server's last log lines when the leg failed

    def phase(self, mode: str, concurrency: int) -> Phase | None:
        for p in self.phases:
            if p.mode == mode and p.concurrency == concurrency:
                return p
        return None


@dataclass(frozen=True)
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path


Launcher = Callable[[int, Path], Server]  # (fake upstream port, work dir) -> started server


@dataclass(frozen=True)
class Leg:
    """Where to send the load and how to start the server that answers it."""

    name: str
    model: str
    key: str
    launch: Launcher | None


# ----------------------------------------------------------------- load generator


def _percentile(sorted_ms: list[float], q: float) -> float:
    if not sorted_ms:
        return float("nan")
    if len(sorted_ms) == 1:
        return sorted_ms[0]
    pos = (len(sorted_ms) - 1) * q
    low = int(pos)
    high = min(low + 1, len(sorted_ms) - 1)
    return sorted_ms[low] + (sorted_ms[high] - sorted_ms[low]) * (pos - low)


def _request_body(model: str, stream: bool) -> bytes:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": PROMPT}]}
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return json.dumps(body).encode()


async def _read_stream(resp: Any, start: float) -> float | None:
    """Read an SSE body; the latency is taken when ``data: [DONE]`` arrives."""
    done_at: float | None = None
    tail = b""
    async for chunk in resp.content.iter_any():
        if done_at is None:
            window = tail + chunk
            if b"data: [DONE]" in window:
                done_at = time.perf_counter()
            tail = window[-16:]
    return None if done_at is None else done_at - start


async def _one_request(session: Any, url: str, body: bytes, headers: dict[str, str], stream: bool) -> float | str:
    """Returns the latency in seconds, or an error description."""
    start = time.perf_counter()
    try:
        async with session.post(url, data=body, headers=headers) as resp:
            if resp.status != 200:
                text = await resp.read()
                return f"HTTP {resp.status}: {text[:200]!r}"
            if stream:
                elapsed = await _read_stream(resp, start)
                return "stream ended without [DONE]" if elapsed is None else elapsed
            payload = await resp.read()
            elapsed = time.perf_counter() - start
            return elapsed if b'"choices"' in payload else f"no choices in body: {payload[:200]!r}"
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


async def _drive(session: Any, spec: dict[str, Any], count: int) -> tuple[list[float], list[str], float]:
    """Sends ``count`` requests, ``concurrency`` at a time, over the session's keep-alive connections."""
    concurrency = int(spec["concurrency"])
    stream = bool(spec["stream"])
    body = _request_body(spec["model"], stream)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {spec['key']}"}
    latencies: list[float] = []
    errors: list[str] = []
    remaining = [count]

    async def worker() -> None:
        while remaining[0] > 0:
            remaining[0] -= 1
            result = await _one_request(session, spec["url"], body, headers, stream)
            if isinstance(result, float):
                latencies.append(result * 1000)
            else:
                errors.append(result)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(min(concurrency, max(count, 1)))))
    return latencies, errors, time.perf_counter() - start


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _machine_busy_s() -> float:
    """CPU seconds spent busy on all cores since boot (/proc/stat)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _process_cpu_s(pids: list[int]) -> float:
    """CPU seconds used so far by the given processes and their descendants."""
    ticks = 0
    for root in pids:
        for pid in _process_tree(root):
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                ticks += int(stat[11]) + int(stat[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


async def _loadgen(spec: dict[str, Any]) -> dict[str, Any]:
    import aiohttp

    concurrency = int(spec["concurrency"])
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False) as session:
        await _drive(session, spec, int(spec["warmup"]))  # also opens the keep-alive connections
        watched: list[int] = spec["watch_pids"]
        cpu0, machine0, watched0 = _cpu_seconds(), _machine_busy_s(), _process_cpu_s(watched)
        measured = _drive(session, spec, int(spec["count"]))
        latencies, errors, wall = await asyncio.wait_for(measured, timeout=PHASE_TIMEOUT_S)
        cpu, machine = _cpu_seconds() - cpu0, _machine_busy_s() - machine0
        servers = _process_cpu_s(watched) - watched0
    return {
        "latencies_ms": latencies,
        "errors": errors,
        "wall_s": wall,
        "cpu_s": cpu,
        "servers_cpu_s": servers,
        "other_cpu_s": max(0.0, machine - cpu - servers),
    }


def loadgen_main(spec_json: str) -> None:
    """Entry of the load-generator child: prints one JSON object on stdout."""
    spec = json.loads(spec_json)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    print(json.dumps(asyncio.run(_loadgen(spec))))


def _pct(cpu_s: float, wall_s: float) -> float:
    """CPU seconds over wall seconds, in percent of one core."""
    return round(100 * float(cpu_s) / wall_s, 1) if wall_s > 0 else 0.0


def run_phase(url: str, leg: Leg, mode: str, concurrency: int, sizes: Sizes, watch_pids: list[int]) -> Phase:
    """One measured load; ``watch_pids`` (fake upstream, gateway) are the processes under test."""
    count = sizes.count(mode, concurrency)
    spec = {
        "watch_pids": watch_pids,
        "url": url,
        "model": leg.model,
        "key": leg.key,
        "stream": mode == STREAM,
        "concurrency": concurrency,
        "count": count,
        "warmup": sizes.warmup(concurrency),
    }
    out = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--loadgen", json.dumps(spec)],
        capture_output=True,
        timeout=PHASE_TIMEOUT_S + 120,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"load generator failed: {out.stderr.decode(errors='replace')[-2000:]}")
    data = json.loads(out.stdout)
    lat = sorted(data["latencies_ms"])
    wall = float(data["wall_s"])
    return Phase(
        mode=mode,
        concurrency=concurrency,
        requests=count,
        ok=len(lat),
        errors=len(data["errors"]),
        wall_s=round(wall, 3),
        rps=round(len(lat) / wall, 1) if wall > 0 else 0.0,
        p50_ms=round(_percentile(lat, 0.50), 2),
        p99_ms=round(_percentile(lat, 0.99), 2),
        mean_ms=round(statistics.fmean(lat), 2) if lat else float("nan"),
        client_cpu_pct=_pct(data["cpu_s"], wall),
        servers_cpu_pct=_pct(data["servers_cpu_s"], wall),
        other_cpu_pct=_pct(data["other_cpu_s"], wall),
        error_samples=sorted(set(data["errors"]))[:3],
    )


# -------------------------------------------------------------------- processes


class Children:
    """Every child process started by the bench; ``kill_all`` ends them and their groups."""

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen[bytes]] = []

    def spawn(
        self, cmd: list[str], env: dict[str, str], log: Path, stdout_pipe: bool = False
    ) -> subprocess.Popen[bytes]:
        with log.open("ab") as log_file:
            proc = subprocess.Popen(
                cmd,
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if stdout_pipe else log_file,
                stderr=log_file,
                start_new_session=True,  # own process group: killed with its children
            )
        self._procs.append(proc)
        return proc

    @staticmethod
    def stop(proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is not None:
            return
        for sig, wait_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=wait_s)
                return
            except subprocess.TimeoutExpired:
                continue

    def kill_all(self) -> None:
        for proc in reversed(self._procs):
            self.stop(proc)
            if proc.stdout is not None:
                proc.stdout.close()
        self._procs.clear()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _base_env() -> dict[str, str]:
    dropped = ("AITP_", "LITELLM_", "DATABASE_URL", "PYTHONDONTWRITEBYTECODE")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    env.update(OFFLINE_ENV)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _read_port_line(proc: subprocess.Popen[bytes], timeout_s: float) -> int:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    buf = b""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not sel.select(timeout=0.2):
                if proc.poll() is not None:
                    break
                continue
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                break
            buf += chunk
            for line in buf.splitlines():
                if line.startswith(b"PORT "):
                    return int(line.split()[1])
    raise RuntimeError(f"fake upstream did not report its port (got {buf!r})")


def start_fake(children: Children, latency_ms: float, workdir: Path) -> Server:
    cmd = [
        str(VENV_BIN / "python"),
        "-m",
        "tests.fakes.llm_upstream",
        "--port",
        "0",
        "--latency-ms",
        str(latency_ms),
        "--no-record",
    ]
    log = workdir / f"fake-{latency_ms:g}ms.log"
    proc = children.spawn(cmd, _base_env(), log, stdout_pipe=True)
    port = _read_port_line(proc, 30.0)
    _wait_tcp(port, 30.0)
    return Server(proc, port, log)


def _wait_tcp(port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {HOST}:{port}")


def _try_chat(port: int, model: str, key: str) -> bool:
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        conn.request(
            "POST",
            CHAT_PATH,
            body=_request_body(model, stream=False),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
        )
        resp = conn.getresponse()
        body = resp.read()
        return resp.status == 200 and b'"choices"' in body
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def wait_first_answer(proc: subprocess.Popen[bytes], port: int, leg: Leg, started: float) -> float:
    """Seconds from spawn to the first successful chat completion (polled every 50 ms)."""
    deadline = started + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{leg.name} exited with code {proc.returncode} before answering")
        if _try_chat(port, leg.model, leg.key):
            return time.monotonic() - started
        time.sleep(0.05)
    raise RuntimeError(f"{leg.name} answered no chat request within {STARTUP_TIMEOUT_S:.0f} s")


def _process_tree(root: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            parents.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(parents.get(pid, []))
    return tree


def rss_mb(root_pid: int) -> float:
    """VmRSS of a process plus all its descendants, in MB."""
    total_kb = 0
    for pid in _process_tree(root_pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
    return round(total_kb / 1024, 1)


def _log_tail(path: Path, lines: int = 25) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


# ---------------------------------------------------------------------- targets


# Both gateways call the default tier's provider, DashScope (priced in litellm's map), at the fake.
def _aitp_yaml(fake_port: int) -> str:
    base = f"http://{HOST}:{fake_port}/v1"
    return (
        "models:\n"
        "  - name: bench-turbo\n"
        "    model: dashscope/qwen-turbo\n"
        "    tier: turbo\n"
        f"    api_base: {base}\n"
        "    api_key: fake\n"
        "  - name: bench-plus\n"
        "    model: dashscope/qwen-plus\n"
        "    tier: plus\n"
        f"    api_base: {base}\n"
        "    api_key: fake\n"
        "retries: {num_retries: 0}\n"
    )


def _proxy_yaml(fake_port: int) -> str:
    return (
        "model_list:\n"
        "  - model_name: turbo\n"
        "    litellm_params:\n"
        "      model: dashscope/qwen-turbo\n"
        f"      api_base: http://{HOST}:{fake_port}/v1\n"
        "      api_key: fake\n"
        "litellm_settings:\n"
        "  num_retries: 0\n"
    )


def make_aitp_launcher(children: Children, key: str) -> Launcher:
    def launch(fake_port: int, workdir: Path) -> Server:
        leg_dir = Path(tempfile.mkdtemp(prefix="aitp-", dir=workdir))
        config = leg_dir / "aitp.yaml"
        config.write_text(_aitp_yaml(fake_port))
        (leg_dir / "data").mkdir()
        env = _base_env()
        env.update(
            {
                "AITP_CONFIG": str(config),
                "AITP_DATA_DIR": str(leg_dir / "data"),
                "AITP_DEV": "true",
                "AITP_ADMIN_KEY": key,
            }
        )
        port = _free_port()
        cmd = [str(VENV_BIN / "aitp"), "serve", "--host", HOST, "--port", str(port)]
        log = leg_dir / "server.log"
        return Server(children.spawn(cmd, env, log), port, log)

    return launch


def make_proxy_launcher(children: Children, key: str) -> Launcher:
    def launch(fake_port: int, workdir: Path) -> Server:
        leg_dir = Path(tempfile.mkdtemp(prefix="proxy-", dir=workdir))
        config = leg_dir / "proxy.yaml"
        config.write_text(_proxy_yaml(fake_port))
        env = _base_env()
        env["LITELLM_MASTER_KEY"] = key
        port = _free_port()
        cmd = [
            str(PROXY_VENV / "bin" / "litellm"),
            "--config",
            str(config),
            "--host",
            HOST,
            "--port",
            str(port),
            "--num_workers",
            "1",
        ]
        log = leg_dir / "server.log"
        return Server(children.spawn(cmd, env, log), port, log)

    return launch


def ensure_proxy_venv() -> None:
    """Creates bench/.venv-litellm-proxy with litellm[proxy] pinned, unless it is already there."""
    python = PROXY_VENV / "bin" / "python"
    if (PROXY_VENV / "bin" / "litellm").exists():
        probe = subprocess.run(
            [str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.stdout.strip() == LITELLM_VERSION:
            return
    uv = shutil.which("uv")
    if uv is None:
        raise RuntimeError("uv is needed to create the LiteLLM proxy venv")
    print(f"creating {PROXY_VENV.relative_to(REPO)} with litellm[proxy]=={LITELLM_VERSION} ...", flush=True)
    py_version = f"{sys.version_info.major}.{sys.version_info.minor}"
    subprocess.run([uv, "venv", "--allow-existing", "--python", py_version, str(PROXY_VENV)], check=True)
    subprocess.run(
        [uv, "pip", "install", "--compile-bytecode", "--python", str(python), f"litellm[proxy]=={LITELLM_VERSION}"],
        check=True,
    )


def precompile(python: Path) -> None:
    """Writes the bytecode of an interpreter's site-packages, as pip or a container build would.

    This machine sets PYTHONDONTWRITEBYTECODE, so without this every start would compile
    litellm from source (seconds) and failed imports retried per request would recompile too.
    """
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    subprocess.run(
        [str(python), "-m", "compileall", "-q", "-j", "0", purelib],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,  # a few vendored files do not compile on purpose; that is fine
        timeout=900,
    )


def proxy_version() -> str | None:
    python = PROXY_VENV / "bin" / "python"
    if not python.exists():
        return None
    probe = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        capture_output=True,
        text=True,
        check=False,
    )
    return probe.stdout.strip() or None


# -------------------------------------------------------------------------- run


def run_leg(leg: Leg, fake: Server, latency_ms: float, sizes: Sizes, workdir: Path) -> LegResult:
    result = LegResult(target=leg.name, latency_ms=latency_ms)
    server: Server | None = None
    try:
        port = fake.port
        if leg.launch is not None:
            started = time.monotonic()
            server = leg.launch(fake.port, workdir)
            port = server.port
            result.startup_s = round(wait_first_answer(server.proc, port, leg, started), 2)
            print(f"  {leg.name}: first answer {result.startup_s:.2f} s after spawn", flush=True)
        url = f"http://{HOST}:{port}{CHAT_PATH}"
        for concurrency in (1, sizes.concurrency):
            for mode in (NON_STREAM, STREAM):
                watch = [fake.proc.pid] + ([server.proc.pid] if server else [])
                phase = run_phase(url, leg, mode, concurrency, sizes, watch)
                result.phases.append(phase)
                _print_progress(leg.name, phase)
        if server is not None:
            result.rss_mb = rss_mb(server.proc.pid)
            print(f"  {leg.name}: RSS after load {result.rss_mb:.0f} MB", flush=True)
    except (RuntimeError, subprocess.TimeoutExpired, OSError, ValueError) as exc:
        result.error = str(exc)
        print(f"  {leg.name}: FAILED: {exc}", flush=True)
        result.log_tail = _log_tail(server.log) if server is not None else None
        if result.log_tail:
            print("  --- server log tail ---\n" + result.log_tail, flush=True)
    finally:
        if server is not None:
            Children.stop(server.proc)
    return result


def _print_progress(name: str, phase: Phase) -> None:
    errors = f", {phase.errors} errors {phase.error_samples}" if phase.errors else ""
    print(
        f"  {name}: c={phase.concurrency:<3} {phase.mode:<10} {phase.rps:8.1f} rps  p50 {phase.p50_ms:7.2f} ms"
        f"  p99 {phase.p99_ms:7.2f} ms  cpu% client/servers/other {phase.cpu_summary()}{errors}",
        flush=True,
    )


def run_all(targets: list[str], latencies: list[float], sizes: Sizes) -> list[LegResult]:
    children = Children()
    aitp_key = secrets.token_urlsafe(30)  # 40 characters
    proxy_key = "sk-bench-" + secrets.token_hex(16)
    legs = {
        DIRECT: Leg(DIRECT, "qwen-turbo", "fake", None),
        AITP: Leg(AITP, "turbo", aitp_key, make_aitp_launcher(children, aitp_key)),
        PROXY: Leg(PROXY, "turbo", proxy_key, make_proxy_launcher(children, proxy_key)),
    }
    results: list[LegResult] = []
    try:
        with tempfile.TemporaryDirectory(prefix="aitp-bench-") as tmp:
            workdir = Path(tmp)
            for latency in latencies:
                print(f"\n== upstream latency {latency:g} ms ==", flush=True)
                fake = start_fake(children, latency, workdir)
                try:
                    for name in targets:
                        results.append(run_leg(legs[name], fake, latency, sizes, workdir))
                finally:
                    Children.stop(fake.proc)
    finally:
        children.kill_all()
    return results


# ----------------------------------------------------------------------- report


def _fmt(value: float | None, digits: int = 1) -> str:
    if value is None or value != value:  # None or NaN
        return "-"
    return f"{value:.{digits}f}"


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=True)]
    lines = ["  ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(headers, widths, strict=True)))]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append(
            "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        )
    return "\n".join(lines)


def _find(results: list[LegResult], target: str, latency: float) -> LegResult | None:
    for r in results:
        if r.target == target and r.latency_ms == latency:
            return r
    return None


def added(results: list[LegResult], target: str, latency: float, mode: str, conc: int) -> tuple[float, float] | None:
    """(p50, p99) of the gateway minus the same percentile of the direct leg."""
    gw, direct = _find(results, target, latency), _find(results, DIRECT, latency)
    gp = gw.phase(mode, conc) if gw else None
    dp = direct.phase(mode, conc) if direct else None
    if gp is None or dp is None or not gp.ok or not dp.ok:
        return None
    return round(gp.p50_ms - dp.p50_ms, 2), round(gp.p99_ms - dp.p99_ms, 2)


def rps(results: list[LegResult], target: str, latency: float, mode: str, conc: int) -> float | None:
    leg = _find(results, target, latency)
    phase = leg.phase(mode, conc) if leg else None
    return phase.rps if phase and phase.ok else None


PHASE_HEADERS = ["target", "rps", "p50 ms", "p99 ms", "added p50", "added p99", "errors", "cpu% cli/srv/other"]


def _phase_row(results: list[LegResult], name: str, latency: float, mode: str, conc: int) -> list[str]:
    leg = _find(results, name, latency)
    p = leg.phase(mode, conc) if leg else None
    if p is None:
        return [name, *["-"] * (len(PHASE_HEADERS) - 1)]
    add = added(results, name, latency, mode, conc) if name != DIRECT else None
    return [
        name,
        _fmt(p.rps),
        _fmt(p.p50_ms, 2),
        _fmt(p.p99_ms, 2),
        _fmt(add[0], 2) if add else "-",
        _fmt(add[1], 2) if add else "-",
        f"{p.errors}/{p.requests}",
        p.cpu_summary(),
    ]


def phase_tables(results: list[LegResult], latencies: list[float], targets: list[str], sizes: Sizes) -> str:
    out: list[str] = []
    for latency in latencies:
        for conc in (1, sizes.concurrency):
            for mode in (NON_STREAM, STREAM):
                rows = [_phase_row(results, name, latency, mode, conc) for name in targets]
                count = sizes.count(mode, conc)
                out.append(f"\nupstream {latency:g} ms | concurrency {conc} | {mode} | {count} requests")
                out.append(_table(PHASE_HEADERS, rows))
    return "\n".join(out)


def noise_note(results: list[LegResult]) -> str | None:
    """A warning when other work on the machine took CPU during the measured phases."""
    worst = max((p.other_cpu_pct for r in results for p in r.phases if p.wall_s >= MIN_WALL_FOR_CPU_S), default=0.0)
    if worst < NOISY_OTHER_CPU_PCT:
        return None
    return (
        f"WARNING: other processes used up to {worst:.0f}% of a core during a measured phase; "
        "figures may be noisy (see cpu% other)."
    )


def resource_table(results: list[LegResult], latencies: list[float], targets: list[str]) -> str:
    headers = ["target"]
    for latency in latencies:
        headers += [f"RSS MB @{latency:g}ms", f"first answer s @{latency:g}ms"]
    rows = []
    for name in targets:
        row = [name]
        for latency in latencies:
            leg = _find(results, name, latency)
            row += [_fmt(leg.rss_mb if leg else None, 0), _fmt(leg.startup_s if leg else None, 2)]
        rows.append(row)
    return _table(headers, rows)


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def ratio_table(results: list[LegResult], latencies: list[float], conc: int) -> str:
    headers = ["metric", *[f"@{lat:g}ms" for lat in latencies]]
    rows: list[list[str]] = []
    for mode in (NON_STREAM, STREAM):
        rows.append(
            [
                f"rps c={conc} {mode} (aitp / proxy)",
                *[
                    _fmt(_ratio(rps(results, AITP, lat, mode, conc), rps(results, PROXY, lat, mode, conc)), 2)
                    for lat in latencies
                ],
            ]
        )
        for c in (1, conc):
            for idx, q in ((0, "p50"), (1, "p99")):
                cells = []
                for lat in latencies:
                    a, p = added(results, AITP, lat, mode, c), added(results, PROXY, lat, mode, c)
                    cells.append(_fmt(_ratio(a[idx] if a else None, p[idx] if p else None), 2))
                rows.append([f"added {q} c={c} {mode} (aitp / proxy)", *cells])
    rss_cells, start_cells = [], []
    for lat in latencies:
        mine, theirs = _find(results, AITP, lat), _find(results, PROXY, lat)
        rss_cells.append(_fmt(_ratio(mine.rss_mb if mine else None, theirs.rss_mb if theirs else None), 2))
        start_cells.append(_fmt(_ratio(mine.startup_s if mine else None, theirs.startup_s if theirs else None), 2))
    rows.append(["RSS (aitp / proxy)", *rss_cells])
    rows.append(["first answer time (aitp / proxy)", *start_cells])
    return _table(headers, rows)


@dataclass
class Check:
    line: str
    measured: str
    target: str
    met: bool | None  # None: could not be measured

    @property
    def verdict(self) -> str:
        return {True: "met", False: "NOT MET", None: "n/a"}[self.met]


def _check_max(line: str, value: float | None, limit: float, unit: str) -> Check:
    met = None if value is None else value <= limit
    return Check(line, "-" if value is None else f"{value:.2f} {unit}", f"<= {limit:g} {unit}", met)


def target_checks(results: list[LegResult], latencies: list[float], conc: int) -> list[Check]:
    checks: list[Check] = []
    for lat in latencies:
        for mode in (NON_STREAM, STREAM):
            a = added(results, AITP, lat, mode, 1)
            p50_limit, p99_limit = TARGET_ADDED_C1_MS[mode]
            checks.append(_check_max(f"added p50 c=1 {mode} @{lat:g}ms", a[0] if a else None, p50_limit, "ms"))
            checks.append(_check_max(f"added p99 c=1 {mode} @{lat:g}ms", a[1] if a else None, p99_limit, "ms"))
    for lat in latencies:
        for mode in (NON_STREAM, STREAM):
            ratio = _ratio(rps(results, AITP, lat, mode, conc), rps(results, PROXY, lat, mode, conc))
            met = None if ratio is None else ratio >= TARGET_RPS_RATIO
            measured = "-" if ratio is None else f"{ratio:.2f}x ({_fmt(rps(results, AITP, lat, mode, conc))} rps)"
            checks.append(Check(f"rps c={conc} {mode} @{lat:g}ms vs proxy", measured, f">= {TARGET_RPS_RATIO}x", met))
    for lat in latencies:
        leg = _find(results, AITP, lat)
        checks.append(_check_max(f"RSS after load @{lat:g}ms", leg.rss_mb if leg else None, TARGET_RSS_MB, "MB"))
    for lat in latencies:
        mine, theirs = _find(results, AITP, lat), _find(results, PROXY, lat)
        a_s, p_s = (mine.startup_s if mine else None), (theirs.startup_s if theirs else None)
        met = None if a_s is None or p_s is None else a_s < p_s
        measured = "-" if a_s is None else f"{a_s:.2f} s (proxy {_fmt(p_s, 2)} s)"
        checks.append(Check(f"first answer @{lat:g}ms sooner than proxy", measured, "< proxy", met))
    return checks


def reference_table(results: list[LegResult], latencies: list[float], conc: int) -> str:
    """The issue's LiteLLM proxy numbers next to this run's."""
    headers = ["proxy figure", "issue", *[f"this run @{lat:g}ms" for lat in latencies]]
    rows: list[list[str]] = []
    for mode in (NON_STREAM, STREAM):
        ref50, ref99 = REFERENCE.proxy_added_c1_ms[mode]
        cells50, cells99 = [], []
        for lat in latencies:
            a = added(results, PROXY, lat, mode, 1)
            cells50.append(_fmt(a[0] if a else None, 2))
            cells99.append(_fmt(a[1] if a else None, 2))
        rows.append([f"added p50 c=1 {mode} ms", _fmt(ref50, 1), *cells50])
        rows.append([f"added p99 c=1 {mode} ms", _fmt(ref99, 1), *cells99])
        rows.append(
            [
                f"rps c={conc} {mode}",
                _fmt(REFERENCE.proxy_rps_c50[mode], 0),
                *[_fmt(rps(results, PROXY, lat, mode, conc)) for lat in latencies],
            ]
        )
        rows.append(
            [
                f"direct rps c={conc} {mode}",
                _fmt(REFERENCE.direct_rps_c50[mode], 0),
                *[_fmt(rps(results, DIRECT, lat, mode, conc)) for lat in latencies],
            ]
        )
    legs = [_find(results, PROXY, lat) for lat in latencies]
    rows.append(["RSS MB", _fmt(REFERENCE.proxy_rss_mb, 0), *[_fmt(x.rss_mb if x else None, 0) for x in legs]])
    rows.append(
        ["first answer s", f"~{REFERENCE.proxy_startup_s:g}", *[_fmt(x.startup_s if x else None, 2) for x in legs]]
    )
    return _table(headers, rows)


def print_report(results: list[LegResult], latencies: list[float], targets: list[str], sizes: Sizes) -> list[Check]:
    print("\n================ results ================")
    print("cpu%: load generator / fake upstream + gateway / everything else, in % of one core (2 cores = 200)")
    print(phase_tables(results, latencies, targets, sizes))
    note = noise_note(results)
    if note:
        print("\n" + note)
    print("\nresources (server process and its children; direct has no server of its own)")
    print(resource_table(results, latencies, targets))
    if AITP in targets and PROXY in targets:
        print("\nratios aitp vs litellm-proxy (rps: higher is better; the rest: lower is better)")
        print(ratio_table(results, latencies, sizes.concurrency))
    if PROXY in targets:
        print("\nlitellm-proxy: the issue's reference vs this run")
        print(reference_table(results, latencies, sizes.concurrency))
    checks = target_checks(results, latencies, sizes.concurrency)
    print("\ntargets for aitp")
    print(
        _table(
            ["target line", "measured", "target", "verdict"],
            [[c.line, c.measured, c.target, c.verdict] for c in checks],
        )
    )
    failed = [r for r in results if r.error]
    for r in failed:
        print(f"\n{r.target} @{r.latency_ms:g}ms failed: {r.error}")
    return checks


def _json_safe(value: Any) -> Any:
    """NaN is not JSON: turn it into null, recursively."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def write_json(path: Path, results: list[LegResult], checks: list[Check], sizes: Sizes, elapsed_s: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "elapsed_s": round(elapsed_s, 1),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "litellm_proxy_version": proxy_version(),
        "sizes": asdict(sizes),
        "reference": asdict(REFERENCE),
        "results": [asdict(r) for r in results],
        "targets": [{**asdict(c), "verdict": c.verdict} for c in checks],
    }
    path.write_text(json.dumps(_json_safe(doc), indent=2, allow_nan=False) + "\n")


# ------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small smoke run: 300 non-stream / 100 stream, 50 at c=1")
    parser.add_argument("--targets", default=",".join(TARGET_NAMES), help="comma list of direct,aitp,litellm-proxy")
    parser.add_argument("--latencies", default="0,50", help="upstream latencies in ms, comma list")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--non-stream", type=int, default=None, help="non-stream requests at high concurrency (5000)")
    parser.add_argument("--stream", type=int, default=None, help="stream requests at high concurrency (1000)")
    parser.add_argument("--seq", type=int, default=None, help="requests per mode at concurrency 1 (300)")
    parser.add_argument("--json", type=Path, default=RESULTS, help="where to write the results")
    parser.add_argument("--loadgen", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _sizes(args: argparse.Namespace) -> Sizes:
    seq, non_stream, stream = (50, 300, 100) if args.quick else (300, 5000, 1000)
    return Sizes(
        seq=args.seq or seq,
        non_stream=args.non_stream or non_stream,
        stream=args.stream or stream,
        concurrency=args.concurrency,
    )


def _targets(raw: str) -> list[str]:
    names = [t.strip() for t in raw.split(",") if t.strip()]
    unknown = [t for t in names if t not in TARGET_NAMES]
    if unknown:
        raise SystemExit(f"unknown target(s) {unknown}; choose from {TARGET_NAMES}")
    if DIRECT not in names:
        names.insert(0, DIRECT)  # added latency needs the direct figures
    return [t for t in TARGET_NAMES if t in names]


@contextlib.contextmanager
def _signals_end_the_run() -> Iterator[None]:
    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C even if started with it ignored
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.loadgen:
        loadgen_main(args.loadgen)
        return
    targets = _targets(args.targets)
    latencies = [float(x) for x in args.latencies.split(",") if x.strip()]
    sizes = _sizes(args)
    if PROXY in targets:
        ensure_proxy_venv()
    print("compiling bytecode of the venvs (fast when up to date) ...", flush=True)
    precompile(VENV_BIN / "python")
    if PROXY in targets:
        precompile(PROXY_VENV / "bin" / "python")
    print(
        f"gateway overhead bench: targets {targets}, upstream latencies {latencies} ms, "
        f"c=1: {sizes.seq}/mode, c={sizes.concurrency}: {sizes.non_stream} non-stream + {sizes.stream} stream",
        flush=True,
    )
    started = time.monotonic()
    try:
        with _signals_end_the_run():
            results = run_all(targets, latencies, sizes)
    except KeyboardInterrupt:
        print("\ninterrupted; every child process was stopped", flush=True)
        raise SystemExit(130) from None
    checks = print_report(results, latencies, targets, sizes)
    elapsed = time.monotonic() - started
    write_json(args.json, results, checks, sizes, elapsed)
    print(f"\nwrote {args.json}; total time {elapsed:.0f} s")


if __name__ == "__main__":
    main()
