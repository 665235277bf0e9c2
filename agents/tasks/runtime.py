"""The task engine of one process: broker, actors, store, events, and the periodic jobs.

``aitp serve`` builds one; without Redis it also runs Dramatiq worker
threads in process (embedded mode), and enqueues every unfinished task again
at start. ``aitp worker`` builds one that only executes. Both run the
reaper; the API process also runs retention and refreshes the task gauges.
With Redis, a runtime that executes lists itself in the worker roster
(:mod:`.roster`) until it stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

import dramatiq
import redis
from prometheus_client import CollectorRegistry
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from core.clock import Clock
from core.settings import Settings
from core.tracing import Tracing

from .broker import Actor, create_broker, declare_actors
from .events import LocalBus, RedisBus
from .executor import Executor
from .kinds import KindRegistry
from .leases import LeaseStore
from .metrics import TaskMetrics
from .roster import Heartbeat, WorkerEntry, WorkerRoster
from .store import TaskStore
from .system import SLEEP

log = logging.getLogger("aitp.agents.runtime")


def default_kinds() -> KindRegistry:
    return KindRegistry([SLEEP])


def redis_client(settings: Settings, role: str) -> redis.Redis | None:
    """The process's one synchronous Redis pool, shared by the broker and the event bus (bounded, blocking).

    Its connections are named ``{redis_prefix}:tasks:{role}`` in ``CLIENT LIST``.
    """
    if not settings.redis_url:
        return None
    pool = redis.BlockingConnectionPool.from_url(
        settings.redis_url,
        client_name=f"{settings.redis_prefix}:tasks:{role}",
        max_connections=settings.redis_max_connections,
        timeout=10,
        # Publishing and enqueueing happen on the API's event loop: a hung Redis must not stall it for long.
        socket_timeout=5,
        socket_connect_timeout=2,
        health_check_interval=15,
    )
    return redis.Redis(connection_pool=pool)


class TaskRuntime:
    def __init__(
        self,
        settings: Settings,
        engine: AsyncEngine,
        registry: CollectorRegistry,
        *,
        clock: Clock,
        kinds: KindRegistry | None = None,
        listen_events: bool = True,
        tracing: Tracing | None = None,
    ) -> None:
        self.settings = settings.tasks
        self.clock = clock
        self.kinds = kinds or default_kinds()
        self.tracing = tracing or Tracing.disabled()
        self.redis = redis_client(settings, "api" if listen_events else "worker")
        self.bus: LocalBus = (
            RedisBus(self.redis, settings.redis_prefix, listen=listen_events) if self.redis else LocalBus()
        )
        self.metrics = TaskMetrics(registry)
        self.store = TaskStore(engine, self.bus, clock)
        self.leases = LeaseStore(engine, self.bus, self.settings.lease_s, clock)
        self.namespace = f"{settings.redis_prefix}-tasks"
        self.roster = (
            WorkerRoster(self.redis, settings.redis_prefix, self.settings.worker_heartbeat_s) if self.redis else None
        )
        self.broker = create_broker(self.settings, self.redis, self.namespace, self._expired)
        self.actors: dict[str, Actor] = declare_actors(self.broker, self.kinds, self.settings, self._run_message)
        self._executor: Executor | None = None
        self._worker: dramatiq.Worker | None = None
        self._me: WorkerEntry | None = None  # this process, while it executes tasks
        self._heartbeat: Heartbeat | None = None
        self._jobs: list[asyncio.Task[None]] = []
        self._reports: dict[str, Callable[[], dict[str, Any]]] = {}

    @property
    def distributed(self) -> bool:
        return self.redis is not None

    @property
    def worker_threads(self) -> int:
        """Threads executing tasks in this process; 0 when ``aitp worker`` processes run them."""
        return len(self._worker.workers) if self._worker is not None else 0

    def report(self, name: str, figures: Callable[[], dict[str, Any]]) -> None:
        """Add ``figures()`` under ``name`` to what this process says of itself in the worker list."""
        self._reports[name] = figures

    def status(self) -> dict[str, Any]:
        """Every reported figure of this process; one that fails is left out, not the heartbeat."""
        found: dict[str, Any] = {}
        for name, figures in self._reports.items():
            try:
                found[name] = figures()
            except Exception as exc:  # a report is a view of some part; the beat must go on without it
                log.warning("worker status %s failed: %s", name, exc)
        return found

    async def workers(self) -> list[WorkerEntry]:
        """The processes executing tasks: the roster's live entries with Redis, else this process (if it executes)."""
        if self.roster is not None:
            return await asyncio.to_thread(self.roster.live)
        if self._me is None:
            return []
        return [replace(self._me, threads=self.worker_threads_alive(), beat_at=self.clock.now(), status=self.status())]

    def enqueue(self, task_id: str, kind: str) -> None:
        actor = self.actors.get(kind)
        if actor is None:
            log.warning("no actor for kind %s; task %s stays pending", kind, task_id)
            return
        trace = self.tracing.inject()
        if trace:
            actor.send_with_options(args=(task_id,), aitp_trace=trace)  # broker.TRACE_OPTION
        else:
            actor.send(task_id)

    def check_broker(self) -> str:
        """Whether messages can be sent and taken (blocking; raises naming the fault): for ``/readyz``.

        Distributed: the broker's Redis answers. Embedded: the in-process worker threads are alive.
        """
        if self.redis is not None:
            self.redis.ping()
        if self._worker is None:
            return "redis broker" if self.distributed else "stub broker, not executing here"
        threads = self._worker.workers
        alive = self.worker_threads_alive()
        if alive < len(threads):
            dead = len(threads) - alive
            raise RuntimeError(f"{dead} of {len(threads)} worker threads have died; restart the process")
        return f"{'redis' if self.distributed else 'stub'} broker, {alive} worker threads"

    def worker_threads_alive(self) -> int:
        worker = self._worker
        return 0 if worker is None else sum(thread.is_alive() for thread in worker.workers)

    def queues(self) -> set[str]:
        return {actor.queue_name for actor in self.actors.values()}

    async def start(
        self,
        *,
        execute: bool,
        threads: int,
        queues: set[str] | None = None,
        api: bool = True,
    ) -> None:
        """Start the bus and periodic jobs, and with ``execute`` the worker threads, on the running loop."""
        loop = asyncio.get_running_loop()
        self.bus.start()
        if execute:
            self._executor = Executor(
                self.kinds, self.leases, self.settings, self.metrics, loop, self.enqueue, self.tracing
            )
            self.broker.emit_after("process_boot")
            worker_timeout = 100 if self.distributed else 250
            self._worker = dramatiq.Worker(
                self.broker, queues=queues, worker_threads=threads, worker_timeout=worker_timeout
            )
            self._worker.start()
            self._me = WorkerEntry.of_this_process(threads, queues or self.queues(), self.clock.now())
            if self.roster is not None:
                self._heartbeat = Heartbeat(self.roster, self._me, self.clock, self.worker_threads_alive, self.status)
                await asyncio.to_thread(self._heartbeat.start)
            self.metrics.worker_threads.set_function(self.worker_threads_alive)
            executor = self._executor
            self.metrics.running.set_function(lambda: executor.running)
            if not self.distributed:
                # Embedded mode: the in-memory queue died with the last process; the tasks table did not.
                unfinished = await self.store.unfinished()
                for task_id, kind in unfinished:
                    self.enqueue(task_id, kind)
                if unfinished:
                    log.info("re-enqueued %d unfinished tasks", len(unfinished))
        self._every(self.settings.reaper_interval_s, self.reap)
        if api:
            self._every(self.settings.retention_interval_s, self.purge)
            self._every(self.settings.metrics_refresh_s, self.refresh_metrics)

    async def stop(self) -> None:
        for job in self._jobs:
            job.cancel()
        for job in self._jobs:
            with contextlib.suppress(asyncio.CancelledError):
                await job
        self._jobs.clear()
        if self._worker is not None and self._executor is not None:
            # Worker threads stop taking messages while running tasks get their grace period.
            stopping = asyncio.create_task(asyncio.to_thread(self._worker.stop, 30_000))
            await self._executor.drain(self.settings.shutdown_grace_s)
            await stopping
            self._worker = None
            self._me = None
        if self._heartbeat is not None:
            # Listed until its running tasks are finished or released, then gone at once.
            await asyncio.to_thread(self._heartbeat.stop)
            self._heartbeat = None
        self.bus.stop()
        if self.redis is not None:
            self.redis.close()
            self.redis.connection_pool.disconnect()

    def _every(self, interval_s: float, job: Callable[[], Awaitable[object]]) -> None:
        async def loop() -> None:
            while True:
                try:
                    await job()
                except (SQLAlchemyError, OSError, redis.RedisError) as exc:
                    log.warning("periodic task job %s failed: %s", job.__name__, exc)
                await asyncio.sleep(interval_s)

        self._jobs.append(asyncio.create_task(loop(), name=f"aitp-tasks-{job.__name__}"))

    async def reap(self) -> None:
        reaped = await self.leases.reap(self.settings.pending_requeue_s)
        for task_id, kind in reaped.requeue:
            self.enqueue(task_id, kind)
        if reaped.requeue or reaped.failed:
            self.metrics.reaped.labels("requeued").inc(len(reaped.requeue))
            self.metrics.reaped.labels("failed").inc(len(reaped.failed))
            log.warning("reaper: %d tasks requeued, %d failed (worker lost)", len(reaped.requeue), len(reaped.failed))

    async def purge(self) -> None:
        purged = await self.store.purge(timedelta(days=self.settings.retention_days))
        if purged:
            log.info("purged %d tasks finished over %g days ago", purged, self.settings.retention_days)

    async def refresh_metrics(self) -> None:
        self.metrics.set_counts(await self.store.counts())

    def _run_message(self, kind: str, task_id: str, trace: dict[str, str]) -> None:
        if self._executor is None:
            raise RuntimeError("this process does not execute tasks (start the runtime with execute=True)")
        self._executor.run_message(kind, task_id, trace)

    def _expired(self, task_id: str, reason: str) -> None:
        if self._executor is not None:
            self._executor.expire(task_id, reason)
