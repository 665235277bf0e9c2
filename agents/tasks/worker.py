"""``aitp worker``: Dramatiq worker processes executing tasks from Redis.

With ``--processes 1`` this process is the worker. With more, it supervises
that many ``aitp worker --processes 1`` children (restarting one that dies)
and passes SIGTERM/SIGINT on. A worker stopping gracefully lets its running
tasks finish for ``tasks.shutdown_grace_s`` and then releases them: they go
back to pending, uncounted, and another worker runs them.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, start_http_server

from core.clock import SystemClock
from core.db import create_engine, migrate
from core.process_metrics import register_process_metrics
from core.redis import create_redis
from core.settings import Settings
from core.tracing import Tracing
from gateway.assembly import build_gateway_core

from ..assembly import build_kinds, build_services
from .runtime import TaskRuntime

log = logging.getLogger("aitp.agents.worker")
T = TypeVar("T")


def _on_stop(stop: threading.Event) -> None:
    def handler(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def run_worker(settings: Settings, *, threads: int, queues: set[str] | None, metrics_port: int | None) -> int:
    """One worker process: Dramatiq threads on the Redis broker, the task coroutines on a loop thread."""
    if not settings.redis_url:
        log.error("aitp worker needs Redis: set AITP_REDIS_URL (without it, `aitp serve` runs tasks itself)")
        return 2
    stop = threading.Event()
    _on_stop(stop)
    loop = asyncio.new_event_loop()
    loop_thread = threading.Thread(target=loop.run_forever, name="aitp-task-loop", daemon=True)
    loop_thread.start()

    def run(coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, loop).result()

    engine = create_engine(settings.effective_database_url, settings.database_pool_size, settings.database_max_overflow)
    registry = CollectorRegistry()
    register_process_metrics(registry, settings.data_dir)
    redis_async = create_redis(settings.redis_url, settings.redis_max_connections, socket_timeout_s=5.0)
    clock = SystemClock()
    tracing = Tracing.from_settings(settings.tracing)
    core = build_gateway_core(settings, engine, redis_async, registry, clock, tracing.tracer)
    services = build_services(settings, engine, core, registry)
    kinds = build_kinds(services)
    runtime = TaskRuntime(settings, engine, registry, clock=clock, kinds=kinds, listen_events=False, tracing=tracing)
    unknown = (queues or set()) - runtime.queues()
    if unknown:
        log.error("unknown queues %s; the kinds use %s", sorted(unknown), sorted(runtime.queues()))
        return 2
    if metrics_port is not None:
        start_http_server(metrics_port, addr="127.0.0.1", registry=registry)
    run(migrate(engine))

    async def start() -> None:
        # Agents call models in process; litellm (~5 s of CPU, ~190 MB) loads when a task first needs it.
        core.engine_ref.load_on_demand(core.load_engine)
        await core.start()
        runtime.report("browser_pool", services.browser.usage)
        await runtime.start(execute=True, threads=threads, queues=queues, api=False)

    run(start())
    gc.freeze()  # start-up objects live as long as the process: keep them out of full collections
    log.info("worker ready", extra={"threads": threads, "queues": sorted(queues or runtime.queues())})
    while not stop.wait(1.0):
        pass
    log.info("worker stopping: running tasks get %g s, then are released", settings.tasks.shutdown_grace_s)
    run(runtime.stop())
    run(core.stop())
    run(services.kb.close())
    run(services.browser.close())
    run(redis_async.aclose())
    run(engine.dispose())
    loop.call_soon_threadsafe(loop.stop)
    loop_thread.join(timeout=5)
    tracing.shutdown()
    log.info("worker stopped")
    return 0


def supervise(processes: int, threads: int, queues: str | None, metrics_port: int | None) -> int:
    """Run ``processes`` single-process workers as children; restart any that dies until told to stop."""
    stop = threading.Event()
    _on_stop(stop)

    def spawn(index: int) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "aitp.cli", "worker", "--processes", "1", "--threads", str(threads)]
        if queues:
            command += ["--queues", queues]
        if metrics_port is not None:
            command += ["--metrics-port", str(metrics_port + index)]
        return subprocess.Popen(command)

    children = [spawn(i) for i in range(processes)]
    while not stop.wait(0.5):
        for index, child in enumerate(children):
            code = child.poll()
            if code is not None:
                log.warning("worker process %d exited with %s; starting another", child.pid, code)
                time.sleep(1.0)
                children[index] = spawn(index)
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.wait(timeout=60)
        except subprocess.TimeoutExpired:
            child.kill()
    return 0
