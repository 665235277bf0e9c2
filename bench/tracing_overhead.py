"""What OpenTelemetry tracing costs a request: one ``aitp serve`` with tracing off, one with it on.

Both gateways call the fake upstream (tests/fakes/llm_upstream.py, 0 ms) on
127.0.0.1; the traced one exports every span (sample ratio 1) over OTLP/HTTP
to a sink in this process that answers 200 and counts the bytes, so export
work is included. One client sends requests one at a time on a keep-alive
connection, alternating between the servers in blocks so that a noisy
neighbour hits both alike, for two routes: ``GET /healthz`` (the HTTP span
alone) and ``POST /v1/chat/completions`` under a project budget (server span,
ledger reserve/settle, the upstream span). It prints, per route and server,
the median and p95 latency and the server's CPU time per request (user+system
from /proc, less sensitive to the machine's load than latency), and the ratio
on/off.

Usage (from the repo root):
    .venv/bin/python bench/tracing_overhead.py               # 600 requests per route and server
    .venv/bin/python bench/tracing_overhead.py --requests 200
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
from harness import HOST, fmt, free_port, percentile, stop_process, table

REPO = Path(__file__).resolve().parent.parent
PYTHON = REPO / ".venv" / "bin" / "python"
BLOCK = 50  # requests to one server before switching to the other
CHAT = {"model": "turbo", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 16}


class _Sink(BaseHTTPRequestHandler):
    received = 0

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        _Sink.received += len(self.rfile.read(length))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return


@dataclass
class Target:
    name: str
    process: subprocess.Popen[bytes]
    base: str
    key: str = ""
    latency_ms: dict[str, list[float]] = field(default_factory=dict)
    cpu_s: dict[str, float] = field(default_factory=dict)

    def cpu(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_fake(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    proc = subprocess.Popen(
        [str(PYTHON), "-m", "tests.fakes.llm_upstream", "--port", "0", "--no-record"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=(workdir / "fake.log").open("wb"),
        start_new_session=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    if not line.startswith("PORT "):
        raise RuntimeError(f"the fake upstream did not start: {line!r}")
    return proc, int(line.split()[1])


def start_aitp(name: str, workdir: Path, fake_port: int, env_extra: dict[str, str]) -> Target:
    home = workdir / name
    home.mkdir()
    base = f"http://{HOST}:{fake_port}/v1"
    (home / "aitp.yaml").write_text(
        "models:\n"
        f"  - {{name: bench-turbo, model: dashscope/qwen-turbo, tier: turbo, api_base: '{base}', api_key: fake}}\n"
        f"  - {{name: bench-plus, model: dashscope/qwen-plus, tier: plus, api_base: '{base}', api_key: fake}}\n"
        "retries: {num_retries: 0}\n"
        "mcp: {enabled: false}\n"
        "log_level: warning\n"
    )
    admin = "sk-aitp-bench-" + secrets.token_urlsafe(24)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AITP_", "OTEL_"))}
    env.update({"AITP_ADMIN_KEY": admin, "AITP_CONFIG": str(home / "aitp.yaml"), "AITP_DATA_DIR": str(home / "data")})
    env.update({"LITELLM_LOCAL_MODEL_COST_MAP": "True", "NO_PROXY": "127.0.0.1", **env_extra})
    port = free_port()
    proc = subprocess.Popen(
        [str(PYTHON), "-m", "aitp.cli", "serve", "--host", HOST, "--port", str(port)],
        cwd=home,
        env=env,
        stdout=(home / "server.log").open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    target = Target(name, proc, f"http://{HOST}:{port}")
    with httpx.Client(base_url=target.base, headers={"authorization": f"Bearer {admin}"}, timeout=30) as http:
        deadline = time.monotonic() + 120
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if http.get("/readyz").status_code == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not become ready; see {home / 'server.log'}")
            time.sleep(0.2)
        http.post("/api/projects", json={"name": "bench"}).raise_for_status()
        http.put("/api/budgets", json={"project": "bench", "limit_tokens": 10**9, "action": "block"})
        made = http.post("/api/keys", json={"project": "bench", "name": "bench", "role": "member"})
        made.raise_for_status()
        target.key = made.json()["key"]
    return target


def run_route(targets: list[Target], route: str, requests: int) -> None:
    clients = {
        t.name: httpx.Client(base_url=t.base, headers={"authorization": f"Bearer {t.key}"}, timeout=30) for t in targets
    }

    def one(target: Target) -> float:
        client = clients[target.name]
        started = time.perf_counter()
        response = client.get("/healthz") if route == "healthz" else client.post("/v1/chat/completions", json=CHAT)
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise RuntimeError(f"{target.name} {route}: {response.status_code} {response.text[:200]}")
        return elapsed

    try:
        for target in targets:  # warm-up: connections, caches, litellm's first-call work
            for _ in range(BLOCK):
                one(target)
        for target in targets:
            target.latency_ms[route] = []
            target.cpu_s[route] = 0.0
        done = 0
        while done < requests:
            for target in targets:
                before = target.cpu()
                target.latency_ms[route] += [one(target) for _ in range(BLOCK)]
                target.cpu_s[route] += target.cpu() - before
            done += BLOCK
    finally:
        for client in clients.values():
            client.close()


def report(targets: list[Target], routes: list[str]) -> str:
    rows = []
    for route in routes:
        for target in targets:
            lat = target.latency_ms[route]
            rows.append(
                [
                    route,
                    target.name,
                    str(len(lat)),
                    fmt(percentile(lat, 0.5), 2),
                    fmt(percentile(lat, 0.95), 2),
                    fmt(target.cpu_s[route] / len(lat) * 1e6, 0),
                ]
            )
        off, on = targets
        ratio_p50 = percentile(on.latency_ms[route], 0.5) / percentile(off.latency_ms[route], 0.5)
        ratio_cpu = (on.cpu_s[route] / len(on.latency_ms[route])) / (off.cpu_s[route] / len(off.latency_ms[route]))
        rows.append([route, "on/off", "", fmt(ratio_p50, 3), "", fmt(ratio_cpu, 3)])
    return table(["route", "tracing", "requests", "p50 ms", "p95 ms", "server CPU µs/req"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=600, help="measured requests per route and server")
    args = parser.parse_args()
    requests = max(BLOCK, args.requests // BLOCK * BLOCK)
    sink = ThreadingHTTPServer((HOST, 0), _Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    endpoint = f"http://{HOST}:{sink.server_address[1]}/v1/traces"
    children: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="aitp-tracing-bench-") as tmp:
        workdir = Path(tmp)
        try:
            fake, fake_port = start_fake(workdir)
            children.append(fake)
            off = start_aitp("off", workdir, fake_port, {})
            children.append(off.process)
            on = start_aitp(
                "on", workdir, fake_port, {"AITP_TRACING__ENABLED": "true", "AITP_TRACING__ENDPOINT": endpoint}
            )
            children.append(on.process)
            routes = ["healthz", "chat"]
            for route in routes:
                run_route([off, on], route, requests)
            time.sleep(6)  # the batch processor exports every 5 s
            print(report([off, on], routes))
            print(f"OTLP bytes received from the traced server: {_Sink.received}")
        finally:
            for child in reversed(children):
                stop_process(child)
            sink.shutdown()


if __name__ == "__main__":
    sys.exit(main())
