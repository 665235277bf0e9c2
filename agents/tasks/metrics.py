"""Prometheus metrics of the task engine (labels: kind, status, outcome only)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class TaskMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.tasks = Gauge("aitp_tasks", "Tasks by status and kind (from the database)", ["status", "kind"],
                           registry=registry)  # fmt: skip
        self.queue_depth = Gauge("aitp_task_queue_depth", "Tasks waiting to run (pending)", registry=registry)
        self.duration = Histogram(
            "aitp_task_duration_seconds",
            "Execution time of one task attempt that finished",
            ["kind"],
            buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
            registry=registry,
        )
        self.executions = Counter(
            "aitp_task_executions_total", "Task executions by outcome", ["kind", "outcome"], registry=registry
        )
        self.retries = Counter(
            "aitp_task_retries_total", "Transient failures scheduled for a retry", ["kind"], registry=registry
        )
        self.duplicates = Counter(
            "aitp_task_duplicates_suppressed_total",
            "Messages dropped because their task was already claimed or finished",
            registry=registry,
        )
        self.reaped = Counter(
            "aitp_task_reaped_total", "Tasks whose worker died, by what the reaper did", ["action"], registry=registry
        )
        # Per process (API in embedded mode, each `aitp worker`): sum over instances for the whole system.
        self.worker_threads = Gauge(
            "aitp_task_worker_threads", "Dramatiq worker threads alive in this process", registry=registry
        )
        self.running = Gauge("aitp_task_running", "Task executions in progress in this process", registry=registry)
        self._seen: set[tuple[str, str]] = set()

    def set_counts(self, counts: list[tuple[str, str, int]]) -> None:
        current = {(status, kind): n for status, kind, n in counts}
        for labels in self._seen - current.keys():
            self.tasks.labels(*labels).set(0)
        for (status, kind), n in current.items():
            self.tasks.labels(status, kind).set(n)
        self._seen |= current.keys()
        self.queue_depth.set(sum(n for (status, _), n in current.items() if status == "pending"))
