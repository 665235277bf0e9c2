"""The live monitor: gateway latency and errors by route, the task queue, and (server admin) the process itself.

Gateway figures come from the usage rows of the last ``window_s`` seconds
(default 15 minutes), as :class:`~gateway.reports.UsageReports` computes
them (nearest-rank percentiles, ``errors`` = HTTP status >= 400, and
``upstream_share``, the part of the routes' time spent waiting on the upstream,
with ``overhead_p95_ms``, the p95 of the gateway's own time per call); the
queue from the tasks table. The ledger probe, the workers and the process's
CPU, memory and disk describe the whole server, so only the server admin key
sees them (``system`` is null for other keys). Workers are the processes that
execute tasks: in distributed mode every live ``aitp worker`` from the roster
in Redis (:mod:`agents.tasks.roster`), in embedded mode this process. The
browser pool's use is read from the pool's counters (this never starts a
browser); each worker also reports its own pool with its heartbeat, and
``workers.browser_pools`` sums them (in distributed mode the runs happen there,
and this process's pool stays idle).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import psutil
import redis

from core.clock import Clock
from core.identity.principal import Principal
from core.timefmt import utc_iso
from core.validation import check_int
from gateway.ledger.base import Ledger, Period
from gateway.reports import UsageReports

from ..tasks.runtime import TaskRuntime
from ..tasks.tables import RUNNING

DEFAULT_WINDOW_S = 900
MAX_WINDOW_S = 86400
LEDGER_PROBES = 5
_POOL_SUMS = ("in_use", "cap", "queued", "browsers", "max_browsers")
_PROBE = "monitor:probe"  # a counter nothing charges: reading it costs what any budget read costs


class MonitorService:
    def __init__(
        self,
        reports: UsageReports,
        runtime: TaskRuntime,
        ledger: Ledger,
        data_dir: Path,
        clock: Clock,
        browser_usage: Callable[[], dict[str, Any]] | None = None,  # this process's browser pool, as figures
    ) -> None:
        self._reports = reports
        self._browser_usage = browser_usage
        self._runtime = runtime
        self._ledger = ledger
        self._data_dir = data_dir
        self._clock = clock
        self._process = psutil.Process()

    async def snapshot(
        self, principal: Principal, project: str | None = None, window_s: int = DEFAULT_WINDOW_S
    ) -> dict[str, Any]:
        """``{at, window_s, routes, totals, tasks, system}`` for the caller's project (root: ``project`` or all)."""
        check_int(window_s, "window_s", 10, MAX_WINDOW_S)
        now = self._clock.now()
        usage = await self._reports.usage(
            principal, project, now - timedelta(seconds=window_s), now, group_by="endpoint"
        )
        routes = [_route(group) for group in usage["groups"]]
        scope = usage["project"]
        stats = await self._runtime.store.stats(scope)
        return {
            "at": utc_iso(now),
            "window_s": window_s,
            "project": scope,
            "routes": routes,
            "totals": _route({"key": "all", **usage["totals"]}),
            "tasks": {
                "queue_depth": stats["backlog"],
                "oldest_pending_age_s": stats["oldest_pending_age_s"],
                "running": stats["by_status"].get(RUNNING, 0),
                "by_status": stats["by_status"],
            },
            "system": await self._system() if principal.root else None,
        }

    async def _system(self) -> dict[str, Any]:
        timings: list[float] = []
        for _ in range(LEDGER_PROBES):
            started = time.perf_counter()
            await self._ledger.snapshot([(_PROBE, Period.TOTAL, None)])
            timings.append((time.perf_counter() - started) * 1000)
        process = self._process
        with process.oneshot():
            memory = process.memory_info()
            cpu = process.cpu_percent(None)  # since the previous snapshot (0.0 on the first)
            threads = process.num_threads()
        disk = psutil.disk_usage(str(self._data_dir if self._data_dir.exists() else Path.cwd()))
        return {
            "ledger": {
                "backend": type(self._ledger).__name__,
                "probes": LEDGER_PROBES,
                "median_ms": round(statistics.median(timings), 3),
                "max_ms": round(max(timings), 3),
            },
            "workers": await self._workers(),
            "process": {
                "pid": process.pid,
                "cpu_percent": round(cpu, 1),
                "rss_bytes": memory.rss,
                "threads": threads,
            },
            "host": {
                "cpu_count": psutil.cpu_count() or 0,
                "cpu_percent": psutil.cpu_percent(None),
                "memory_percent": psutil.virtual_memory().percent,
            },
            "disk": {
                "path": str(self._data_dir),
                "total_bytes": disk.total,
                "used_bytes": disk.used,
                "free_bytes": disk.free,
                "percent": disk.percent,
            },
            "browser_pool": self._browser_usage() if self._browser_usage is not None else None,
        }

    async def _workers(self) -> dict[str, Any]:
        runtime = self._runtime
        found: dict[str, Any] = {
            "mode": "distributed" if runtime.distributed else "embedded",
            "threads_in_this_process": runtime.worker_threads,
        }
        try:
            entries = await runtime.workers()
        except redis.RedisError as exc:
            # The rest of the snapshot still helps while Redis is away; the figures say they are unknown.
            return {**found, "count": None, "threads": None, "items": [], "error": f"Redis did not answer: {exc}"}
        now = self._clock.now()
        pools = [
            entry.status["browser_pool"] for entry in entries if isinstance(entry.status.get("browser_pool"), dict)
        ]
        return {
            **found,
            "count": len(entries),
            "threads": sum(entry.threads for entry in entries),
            "items": [entry.view(now) for entry in entries],
            # The pools of the processes that execute browser runs (in distributed mode, not this one's).
            "browser_pools": {
                "reporting": len(pools),
                **{name: sum(int(pool.get(name) or 0) for pool in pools) for name in _POOL_SUMS},
            },
        }


def _route(group: dict[str, Any]) -> dict[str, Any]:
    n = group["requests"]
    return {
        "route": group["key"],
        "requests": n,
        "errors": group["errors"],
        "error_rate": round(group["errors"] / n, 6) if n else None,
        "p50_ms": group["p50_latency_ms"],
        "p95_ms": group["p95_latency_ms"],
        "p99_ms": group["p99_latency_ms"],
        "upstream_share": group["upstream_share"],
        "overhead_p95_ms": group["p95_overhead_ms"],
    }
