"""Gateway overhead benchmark: direct upstream vs aitp vs LiteLLM proxy.

Starts the fake upstream (tests/fakes/llm_upstream.py) once per upstream latency
(0 ms and 50 ms), then sends the same load directly to it, through aitp (one
uvicorn worker) and through LiteLLM proxy (one worker, its own venv in
bench/.venv-litellm-proxy, master key set, no database). For each leg it
measures throughput and latency at concurrency 1 and 50, non-stream and stream,
the RSS of the server after the load and the time from spawn to the first
answered chat completion. It prints the figures side by side, the ratios aitp vs
proxy, LiteLLM proxy's reference figures next to this run's and the targets for
aitp, and writes everything as JSON to bench/results/gateway_overhead.json.

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
import contextlib
import secrets
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from gw_config import (
    AITP,
    CHAT_PATH,
    DIRECT,
    NON_STREAM,
    PROXY,
    PROXY_VENV,
    RESULTS,
    STREAM,
    TARGET_NAMES,
    VENV_BIN,
    Leg,
    LegResult,
    Phase,
    Server,
    Sizes,
)
from gw_loadgen import loadgen_main, run_phase
from gw_report import print_report, write_json
from gw_servers import (
    Children,
    ensure_proxy_venv,
    make_aitp_launcher,
    make_proxy_launcher,
    precompile,
    rss_mb,
    start_fake,
    wait_first_answer,
)
from harness import HOST, log_tail

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
        result.log_tail = log_tail(server.log, 25) if server is not None else None
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
