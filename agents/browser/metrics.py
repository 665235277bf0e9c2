"""Prometheus metrics of the browser runner (low-cardinality labels only; the registry is passed in)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class BrowserMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.in_use = Gauge("aitp_browser_pool_in_use", "Runs holding a browser context now", registry=registry)
        self.browsers = Gauge("aitp_browser_pool_browsers", "Browser processes alive in the pool", registry=registry)
        self.queue = Gauge("aitp_browser_pool_queue", "Runs waiting for a browser", registry=registry)
        self.launch_seconds = Histogram(
            "aitp_browser_launch_seconds",
            "Time to launch one browser",
            buckets=(0.25, 0.5, 1, 2, 4, 8, 16, 32),
            registry=registry,
        )
        self.refusals = Counter(
            "aitp_browser_pool_refusals_total", "Runs refused by the pool, by reason", ["reason"], registry=registry
        )
        self.recycled = Counter(
            "aitp_browser_recycled_total", "Browsers closed and replaced, by why", ["reason"], registry=registry
        )
        self.resolutions = Counter(
            "aitp_locator_resolutions_total",
            "Step targets resolved, by the tier that hit and the outcome",
            ["tier", "outcome"],
            registry=registry,
        )
        self.heals = Counter("aitp_browser_heals_total", "Heal attempts by outcome", ["outcome"], registry=registry)
        self.runs = Counter("aitp_browser_runs_total", "Browser runs by status", ["status"], registry=registry)
