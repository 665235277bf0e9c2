"""Gateway overhead bench: the load generator (a child process) and one measured phase."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from gw_config import PHASE_TIMEOUT_S, PROMPT, REQUEST_TIMEOUT_S, STREAM, Leg, Phase, Sizes
from harness import machine_busy_s, percentile, process_tree

# ----------------------------------------------------------------- load generator

SCRIPT = Path(__file__).resolve().parent / "gateway_overhead.py"  # re-executed with --loadgen


def request_body(model: str, stream: bool) -> bytes:
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
    body = request_body(spec["model"], stream)
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


def _process_cpu_s(pids: list[int]) -> float:
    """CPU seconds used so far by the given processes and their descendants."""
    ticks = 0
    for root in pids:
        for pid in process_tree(root):
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
        cpu0, machine0, watched0 = _cpu_seconds(), machine_busy_s(), _process_cpu_s(watched)
        measured = _drive(session, spec, int(spec["count"]))
        latencies, errors, wall = await asyncio.wait_for(measured, timeout=PHASE_TIMEOUT_S)
        cpu, machine = _cpu_seconds() - cpu0, machine_busy_s() - machine0
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
        [sys.executable, str(SCRIPT), "--loadgen", json.dumps(spec)],
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
        p50_ms=round(percentile(lat, 0.50), 2),
        p99_ms=round(percentile(lat, 0.99), 2),
        mean_ms=round(statistics.fmean(lat), 2) if lat else float("nan"),
        client_cpu_pct=_pct(data["cpu_s"], wall),
        servers_cpu_pct=_pct(data["servers_cpu_s"], wall),
        other_cpu_pct=_pct(data["other_cpu_s"], wall),
        error_samples=sorted(set(data["errors"]))[:3],
    )
