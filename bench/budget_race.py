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
import os
import random
import secrets
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import redis.asyncio
from br_cluster import (
    cpu_delta,
    create_database,
    delete_redis_keys,
    drop_database,
    dsn,
    evalsha_stats,
    own_cpu_s,
    start_cluster,
    start_fake,
    usage_rows,
)
from br_config import REDIS_BASE, REPLICAS, SEED, Cleanup, Outcome, Setup, Sizes, Spec
from br_load import (
    burst,
    hist_delta,
    ledger_state,
    make_specs,
    new_project_key,
    paced,
    put_budget,
    scrape,
    usd_limit_for,
    warm_up,
)
from br_report import Results, log_lines, print_report
from harness import machine_busy_s, stop_process

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
        await asyncio.to_thread(stop_process, proc)
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
