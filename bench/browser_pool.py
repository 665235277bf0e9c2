"""Browser pool bench: concurrent runs of a 10-step spec against a local page, pooled and unpooled.

Prints, for the pooled run (the default cap) and for one browser per run with no cap:
the peak number of Chromium processes, runs per minute, the p95 queue wait, peak total
memory (PSS of this process and every child), and locator resolution time per tier.

    .venv/bin/python bench/browser_pool.py [--runs 30] [--cap 5] [--no-trace]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
from prometheus_client import CollectorRegistry

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agents.browser.heal import Healer, HealSettings
from agents.browser.metrics import BrowserMetrics
from agents.browser.pool import ChromiumPool
from agents.browser.runner import BrowserRunner
from agents.browser.spec import parse_spec
from agents.browser.store import BrowserStore
from core.clock import SystemClock
from core.db import create_engine, migrate
from core.outbound import OutboundPolicy
from core.settings import BrowserSettings, OutboundSettings
from tests.agents.browser.site import Site

# Ten steps over the three tiers: gold test ids, silver role/label/placeholder/text, bronze CSS/XPath.
STEPS: list[dict[str, Any]] = [
    {"action": "goto", "url": "/buttons"},
    {"action": "click", "target": {"testid": "save"}},
    {"action": "expect_text", "target": {"testid": "status"}, "value": "Save"},
    {"action": "fill", "target": {"label": "Email"}, "value": "bench@example.com"},
    {"action": "fill", "target": {"placeholder": "Search here"}, "value": "query"},
    {"action": "click", "target": {"role": "button", "name": "Cancel"}},
    {"action": "expect_text", "target": {"css": "#status"}, "value": "Cancel"},
    {"action": "select", "target": {"testid": "size"}, "value": "Large"},
    {"action": "expect_value", "target": {"xpath": "//select[@name='size']"}, "value": "l"},
    {"action": "expect_visible", "target": {"text": "中文页面"}},
]


def pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def tree_pss_mb() -> float:
    total = 0
    me = psutil.Process(os.getpid())
    for proc in [me, *me.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += proc.memory_full_info().pss
    return total / (1024 * 1024)


async def measure(label: str, settings: BrowserSettings, runs: int, site: Site, tmp: Path) -> dict[str, Any]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp / (label + '.db')}")
    await migrate(engine)
    metrics = BrowserMetrics(CollectorRegistry())
    pool = ChromiumPool(settings, metrics)
    policy = OutboundPolicy(OutboundSettings(allow_loopback=True))
    runner = BrowserRunner(settings, pool, policy, BrowserStore(engine, SystemClock()), metrics)
    healer = Healer(HealSettings(0.6, 0.1, 50, 500), None)
    spec = parse_spec({"name": "bench", "base_url": site.url, "steps": STEPS})
    peak_browsers, peak_mb = 0, 0.0
    done = asyncio.Event()

    async def sample() -> None:
        nonlocal peak_browsers, peak_mb
        while not done.is_set():
            peak_browsers = max(peak_browsers, len(await asyncio.to_thread(pool.browser_pids)))
            peak_mb = max(peak_mb, await asyncio.to_thread(tree_pss_mb))
            await asyncio.sleep(0.2)

    sampler = asyncio.create_task(sample())
    started = time.perf_counter()
    try:
        results = await asyncio.gather(
            *(runner.run("bench", spec, f"{label}-{i}", tmp / label / str(i), healer) for i in range(runs)),
            return_exceptions=True,
        )
    finally:
        wall = time.perf_counter() - started
        done.set()
        await sampler
        await pool.close()
        await engine.dispose()
    ok = [r for r in results if isinstance(r, dict)]
    errors = [repr(r)[:200] for r in results if not isinstance(r, dict)]
    by_tier: dict[str, list[float]] = {"gold": [], "silver": [], "bronze": []}
    for result in ok:
        for step in result["steps"]:
            if step.get("resolve_ms") is not None:
                by_tier[step["tier"]].append(step["resolve_ms"])
    return {
        "label": label,
        "runs": runs,
        "passed": sum(1 for r in ok if r["status"] == "passed"),
        "errors": errors,
        "wall_s": wall,
        "runs_per_min": len(ok) / wall * 60,
        "passed_per_min": sum(1 for r in ok if r["status"] == "passed") / wall * 60,
        "queue_p95_ms": pct([r["queue_wait_ms"] for r in ok], 0.95),
        "queue_p50_ms": pct([r["queue_wait_ms"] for r in ok], 0.5),
        "run_p50_ms": pct([r["duration_ms"] for r in ok], 0.5),
        "peak_browsers": peak_browsers,
        "peak_mb": peak_mb,
        "tiers": {t: (pct(v, 0.5), pct(v, 0.95), len(v)) for t, v in by_tier.items()},
        "failure_codes": [s["error"]["code"] for r in ok for s in r["steps"] if s["status"] == "failed"],
    }


def show(row: dict[str, Any]) -> None:
    print(f"\n[{row['label']}] {row['passed']}/{row['runs']} runs passed in {row['wall_s']:.1f} s")
    print(f"  peak browsers        {row['peak_browsers']}")
    print(f"  runs per minute      {row['runs_per_min']:.1f} finished, {row['passed_per_min']:.1f} passed")
    print(f"  queue wait p50/p95   {row['queue_p50_ms']:.0f} / {row['queue_p95_ms']:.0f} ms")
    print(f"  run time p50         {row['run_p50_ms']:.0f} ms (waiting excluded)")
    print(f"  peak memory (PSS)    {row['peak_mb']:.0f} MB")
    for tier, (p50, p95, n) in row["tiers"].items():
        print(f"  resolve {tier:<7}      p50 {p50:.0f} ms, p95 {p95:.0f} ms ({n} resolutions)")
    failures: dict[str, int] = {}
    for code in row["failure_codes"]:
        failures[code] = failures.get(code, 0) + 1
    if failures:
        print(f"  failed steps         {failures}")
    for error in row["errors"][:5]:
        print(f"  error: {error}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--cap", type=int, default=BrowserSettings().max_browsers)
    parser.add_argument("--no-trace", action="store_true", help="runs without a Playwright trace")
    parser.add_argument("--skip-unpooled", action="store_true")
    args = parser.parse_args()
    site = Site().start()
    trace = not args.no_trace
    load = os.getloadavg()[0]
    print(f"{args.runs} concurrent runs of a {len(STEPS)}-step spec; {os.cpu_count()} cores, load {load:.1f}")
    print(f"trace {'on' if trace else 'off'}")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            pooled = BrowserSettings(max_browsers=args.cap, trace=trace, queue_wait_s=600)
            rows = [await measure(f"pool cap {args.cap}", pooled, args.runs, site, Path(tmp))]
            if not args.skip_unpooled:
                # One browser per run, launched at once, closed after it: what the platform did before the pool.
                # The memory floor stays (2 GB) so that the bench cannot exhaust a shared machine.
                unpooled = BrowserSettings(
                    max_browsers=args.runs, recycle_after_runs=1, trace=trace, queue_wait_s=600, min_free_memory_mb=2048
                )
                rows.append(await measure("one browser per run", unpooled, args.runs, site, Path(tmp)))
            for row in rows:
                show(row)
    finally:
        site.stop()


if __name__ == "__main__":
    asyncio.run(main())
