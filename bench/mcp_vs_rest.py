"""MCP against REST for the same read: ``get_task_status`` over streamable HTTP beside ``GET /api/tasks/{id}``.

Starts one ``aitp serve`` (embedded mode, a fresh data directory), makes a task,
then measures in one run, for 1 and for N concurrent clients:

- REST: ``GET /api/tasks/{id}`` with a kept-alive httpx client per worker;
- MCP: ``tools/call get_task_status`` in an initialised session per worker
  (official SDK client), both protocol generations.

Prints p50/p99 per case and the MCP/REST ratio at p50 (target: at most 2x).

Usage (from the repo root):
    .venv/bin/python bench/mcp_vs_rest.py             # 400 calls per case
    .venv/bin/python bench/mcp_vs_rest.py --calls 100 --concurrency 20
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import httpx2
import yaml
from harness import HOST, log_tail, percentile, stop_process, table
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

REPO = Path(__file__).resolve().parent.parent
PORT_LINE = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")


def start_server(tmp: Path) -> tuple[subprocess.Popen[bytes], str, str, Path]:
    key = "sk-aitp-bench-" + secrets.token_urlsafe(24)
    config = tmp / "aitp.yaml"
    config.write_text(yaml.safe_dump({"log_level": "info"}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AITP_")}
    env.update(
        {
            "AITP_ADMIN_KEY": key,
            "AITP_CONFIG": str(config),
            "AITP_DATA_DIR": str(tmp / "data"),
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        }
    )
    log = tmp / "server.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "aitp.cli", "serve", "--port", "0"],
        cwd=tmp,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        match = PORT_LINE.search(log.read_text(errors="replace"))
        if match:
            base = f"http://{HOST}:{match.group(1)}"
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                        return proc, base, key, log
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    stop_process(proc)
    raise SystemExit(f"aitp serve did not start:\n{log_tail(log, 30)}")


async def rest_worker(base: str, key: str, task_id: str, calls: int, out: list[float]) -> None:
    async with httpx.AsyncClient(base_url=base, headers={"authorization": f"Bearer {key}"}, timeout=30) as http:
        await http.get(f"/api/tasks/{task_id}")  # connection warm-up, not measured
        for _ in range(calls):
            started = time.perf_counter()
            response = await http.get(f"/api/tasks/{task_id}")
            out.append(time.perf_counter() - started)
            response.raise_for_status()


async def mcp_worker(base: str, key: str, task_id: str, calls: int, mode: str, out: list[float]) -> None:
    http = httpx2.AsyncClient(headers={"authorization": f"Bearer {key}"}, timeout=30)
    async with Client(streamable_http_client(f"{base}/mcp", http_client=http), mode=mode) as client:
        await client.call_tool("get_task_status", {"task_id": task_id})  # session warm-up, not measured
        for _ in range(calls):
            started = time.perf_counter()
            result = await client.call_tool("get_task_status", {"task_id": task_id})
            out.append(time.perf_counter() - started)
            if result.is_error:
                raise SystemExit(f"get_task_status failed: {result.content}")


async def measure(base: str, key: str, task_id: str, calls: int, workers: int, case: str) -> list[float]:
    out: list[float] = []
    per = max(1, calls // workers)
    if case == "rest":
        jobs = [rest_worker(base, key, task_id, per, out) for _ in range(workers)]
    else:
        jobs = [mcp_worker(base, key, task_id, per, case, out) for _ in range(workers)]
    await asyncio.gather(*jobs)
    return out


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="aitp-bench-mcp-") as tmp_dir:
        proc, base, key, _ = start_server(Path(tmp_dir))
        try:
            headers = {"authorization": f"Bearer {key}"}
            async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as http:
                task = (await http.post("/api/tasks", json={"kind": "system.sleep", "input": {}})).json()
            rows = []
            for workers in (1, args.concurrency):
                p50s: dict[str, float] = {}
                for case in ("rest", "legacy", "2026-07-28"):
                    samples = await measure(base, key, task["id"], args.calls, workers, case)
                    p50, p99 = percentile(samples, 0.50) * 1000, percentile(samples, 0.99) * 1000
                    p50s[case] = p50
                    label = "REST GET /api/tasks/{id}" if case == "rest" else f"MCP get_task_status ({case})"
                    ratio = "" if case == "rest" else f"{p50 / p50s['rest']:.2f}x"
                    rows.append([label, str(workers), str(len(samples)), f"{p50:.2f}", f"{p99:.2f}", ratio])
            print(table(["case", "clients", "calls", "p50 ms", "p99 ms", "p50 vs REST"], rows))
        finally:
            stop_process(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=400, help="measured calls per case (default 400)")
    parser.add_argument("--concurrency", type=int, default=20, help="concurrent clients of the second round")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
