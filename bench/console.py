"""Console speed on loopback, in headless Chromium: first paint, time to interactive, bytes, a 5,000-row table.

Starts one ``aitp serve`` (embedded, SQLite, the built-in echo model) in a
temporary directory, writes 5,100 usage rows straight into its database (one
an hour for 1,700 hours on three models, so the Spend view's hourly usage
table by model has 5,100 rows), and then measures with Playwright:

- per view, in a fresh browser context (cold cache): first contentful paint
  (the paint timing entry) and time to interactive, taken as the moment the
  view has fetched its data, rendered and attached its handlers (the console
  marks ``main[data-ready]``), both from navigation start;
- route changes inside a signed-in page (hash change to ready);
- bytes transferred for the first view (Overview), compressed, from the
  resource timing entries (the page serves its files gzip-compressed);
- the render time of the 5,000-row usage table (the console's own
  ``usage-table`` performance measure) and the whole view's time to ready.

The plan's bar: first screen under 2 s, route changes under 500 ms.

Usage (from the repo root):
    .venv/bin/python bench/console.py [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from playwright.sync_api import Browser, sync_playwright

REPO = Path(__file__).resolve().parent.parent
PORT_LINE = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-quic"]  # fmt: skip
VIEWS = ["overview", "spend", "budgets", "prompts", "workspace", "tasks", "monitor"]
HOURS = 1700
MODELS = (("qwen-turbo", "turbo"), ("qwen-plus", "plus"), ("qwen-max", "plus"))


def start_server(tmp: Path, key: str) -> tuple[subprocess.Popen[bytes], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AITP_")}
    env.update({"AITP_ADMIN_KEY": key, "AITP_DATA_DIR": str(tmp / "data"), "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                "AITP_LOG_LEVEL": "info", "NO_PROXY": "127.0.0.1"})  # fmt: skip
    log = (tmp / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "aitp.cli", "serve", "--host", "127.0.0.1", "--port", "0"],
        cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 180
    while True:
        text = (tmp / "server.log").read_text(errors="replace")
        found = PORT_LINE.search(text)
        if found:
            break
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            raise SystemExit(f"aitp serve did not start:\n{text[-3000:]}")
        time.sleep(0.1)
    base = f"http://127.0.0.1:{found.group(1)}"
    while time.monotonic() < deadline:
        try:
            checks = httpx.get(f"{base}/readyz", timeout=2).json()["checks"]
            if checks.get("database") == "ok" and checks.get("llm_engine") == "ok":
                return proc, base
        except (httpx.HTTPError, ValueError, KeyError):
            pass
        time.sleep(0.2)
    stop(proc)
    raise SystemExit("aitp serve never became ready")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def seed_usage(db: Path) -> datetime:
    """5,100 usage rows, one per hour and model; returns the first hour."""
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    first = now - timedelta(hours=HOURS - 1)
    rows = []
    for hour in range(HOURS):
        at = (first + timedelta(hours=hour, minutes=5)).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
        for model, tier in MODELS:
            rows.append((f"bench-{hour}-{model}", at, "chat", "default", "admin-env", "auto", model, model, tier,
                         100 + hour % 50, 40, 0.00002 * (1 + hour % 7), 120.0 + hour % 90, "ok", 200))  # fmt: skip
    with sqlite3.connect(db) as conn:
        conn.executemany(
            "INSERT INTO usage_records (request_id, created_at, endpoint, project_id, key_id, model_requested,"
            " model_used, deployment, tier, prompt_tokens, completion_tokens, cost_usd, latency_ms, status,"
            " http_status, stream, attempts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 1)",
            rows,
        )
    return first


def cold_view(browser: Browser, base: str, key: str, view: str, query: str = "") -> dict[str, float]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.add_init_script(f"sessionStorage.setItem('aitp.key', {key!r})")
    page = context.new_page()
    page.goto(f"{base}/console/#/{view}{query}")
    page.wait_for_selector(f'main[data-ready="{view}"]', timeout=120_000)
    figures = page.evaluate(
        """(VIEW) => {
          const nav = performance.getEntriesByType('navigation')[0];
          const fcp = performance.getEntriesByName('first-contentful-paint')[0];
          const resources = performance.getEntriesByType('resource');
          const table = performance.getEntriesByName('usage-table').pop();
          return {
            fcp: fcp ? fcp.startTime : -1,
            ready: performance.getEntriesByName(`ready:${VIEW}`).pop().startTime,
            render: performance.getEntriesByName(`ready:${VIEW}`).pop().startTime
              - performance.getEntriesByName(`start:${VIEW}`).pop().startTime,
            bytes: nav.transferSize + resources.reduce((s, r) => s + r.transferSize, 0),
            decoded: nav.decodedBodySize + resources.reduce((s, r) => s + r.decodedBodySize, 0),
            requests: resources.length + 1,
            table: table ? table.duration : -1,
            api: Math.max(0, ...resources.filter((r) => r.name.includes('/api/'))
              .map((r) => r.responseEnd - r.startTime)),
            rows: document.querySelectorAll('#usage-table tbody tr').length,
          };
        }""",
        view,
    )
    context.close()
    return {k: float(v) for k, v in figures.items()}


def route_changes(browser: Browser, base: str, key: str) -> dict[str, float]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.add_init_script(f"sessionStorage.setItem('aitp.key', {key!r})")
    page = context.new_page()
    page.goto(f"{base}/console/#/overview")
    page.wait_for_selector('main[data-ready="overview"]', timeout=120_000)
    out: dict[str, float] = {}
    for view in [*VIEWS[1:], "overview"]:
        started = time.perf_counter()
        page.evaluate(f"document.getElementById('main').removeAttribute('data-ready'); location.hash = '#/{view}'")
        page.wait_for_selector(f'main[data-ready="{view}"]', timeout=120_000)
        out[view] = (time.perf_counter() - started) * 1000
    context.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="cold loads per view (the median is reported)")
    parser.add_argument("--table-only", action="store_true", help="only the 5,000-row table")
    args = parser.parse_args()
    key = "sk-aitp-bench-" + secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory(prefix="aitp-console-bench-") as tmp_dir:
        tmp = Path(tmp_dir)
        proc, base = start_server(tmp, key)
        try:
            first = seed_usage(tmp / "data" / "aitp.db")
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
                print(f"console on {base}; {len(MODELS) * HOURS} usage rows seeded; median of {args.runs} cold loads")
                print(f"{'view':<10} {'FCP ms':>8} {'ready ms':>9} {'slowest API ms':>15} {'bytes (gzip)':>13} "
                      f"{'decoded':>9} {'requests':>9}")  # fmt: skip
                for view in [] if args.table_only else VIEWS:
                    runs = [cold_view(browser, base, key, view) for _ in range(args.runs)]
                    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
                    print(f"{view:<10} {med['fcp']:>8.0f} {med['ready']:>9.0f} {med['api']:>15.0f} "
                          f"{med['bytes']:>13,.0f} {med['decoded']:>9,.0f} {med['requests']:>9.0f}")  # fmt: skip
                if not args.table_only:
                    changes = [route_changes(browser, base, key) for _ in range(args.runs)]
                    print("route change (hash change to ready), median ms:")
                    print("  " + ", ".join(f"{v} {statistics.median(c[v] for c in changes):.0f}" for v in changes[0]))
                since = first.isoformat().replace("+00:00", "Z")
                query = f"?range=custom&from={since}&bucket=hour&stack=model"
                tables = [cold_view(browser, base, key, "spend", query) for _ in range(args.runs)]
                rows = int(tables[0]["rows"])
                print(f"Spend with a {rows:,}-row usage table: table render "
                      f"{statistics.median(t['table'] for t in tables):.0f} ms, view ready "
                      f"{statistics.median(t['ready'] for t in tables):.0f} ms from navigation (of which "
                      f"{statistics.median(t['render'] for t in tables):.0f} ms from route to ready), slowest API call "
                      f"{statistics.median(t['api'] for t in tables):.0f} ms (median)")  # fmt: skip
                browser.close()
        finally:
            stop(proc)


if __name__ == "__main__":
    main()
