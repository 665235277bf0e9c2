"""The Dramatiq broker and one actor per task kind, built on demand (nothing global, nothing at import).

Middleware, in order: AgeLimit (a message older than ``tasks.max_age_s`` is
dropped, and its task fails as expired), TimeLimit (per kind), Retries
(exponential back-off for :class:`TransientError` only), and
:class:`TaskMiddleware`. The claim, heartbeat and metrics happen in the
executor that every actor calls.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import dramatiq
import redis
from dramatiq.broker import Broker, MessageProxy
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import AgeLimit, CurrentMessage, Middleware, Retries, TimeLimit

from core.settings import TaskSettings

from .kinds import Kind, KindRegistry, TransientError

log = logging.getLogger("aitp.agents.broker")

Actor = dramatiq.Actor[[str], None]
TRACE_OPTION = "aitp_trace"  # message option: the submitter's W3C trace context, so the task joins its trace
Run = Callable[[str, str, dict[str, str]], None]  # (kind, task id, trace context)


def _retry_transient(retries: int, exception: BaseException) -> bool:
    # The executor bounds attempts itself: a TransientError only escapes when one is left.
    return isinstance(exception, TransientError)


class TaskMiddleware(Middleware):
    """Turns a message dropped unrun (AgeLimit) into a failed task instead of one pending forever."""

    def __init__(self, on_expired: Callable[[str, str], None]) -> None:
        self._on_expired = on_expired

    def after_skip_message(self, broker: Broker, message: MessageProxy) -> None:
        if message.failed and message.args:
            reason = f"the task waited in the queue longer than its age limit ({message.actor_name})"
            self._on_expired(str(message.args[0]), reason)


def create_broker(
    settings: TaskSettings, client: redis.Redis | None, namespace: str, on_expired: Callable[[str, str], None]
) -> Broker:
    """RedisBroker on the shared client when Redis is configured, else a StubBroker for in-process workers."""
    middleware: list[Middleware] = [
        AgeLimit(max_age=int(settings.max_age_s * 1000)),
        TimeLimit(time_limit=int(settings.time_limit_s * 1000), interval=250),
        Retries(
            max_retries=settings.max_attempts,
            min_backoff=int(settings.retry_min_backoff_s * 1000),
            max_backoff=int(settings.retry_max_backoff_s * 1000),
            retry_when=_retry_transient,
        ),
        TaskMiddleware(on_expired),
        CurrentMessage(),  # lets the actor read its message's options (the trace context)
    ]
    if client is not None:
        return RedisBroker(client=client, namespace=namespace, middleware=middleware)  # type: ignore[no-untyped-call]
    return StubBroker(middleware=middleware)


def time_limit_s(kind: Kind, settings: TaskSettings) -> float:
    return settings.time_limits.get(kind.name) or kind.time_limit_s or settings.time_limit_s


def declare_actors(broker: Broker, kinds: KindRegistry, settings: TaskSettings, run: Run) -> dict[str, Actor]:
    """One actor per kind, named after it; its message carries only the task id."""
    actors: dict[str, Actor] = {}
    for kind in kinds:
        options: dict[str, Any] = {"time_limit": int(time_limit_s(kind, settings) * 1000)}
        declare = dramatiq.actor(
            broker=broker, actor_name=kind.name, queue_name=kind.queue or settings.queue, **options
        )
        actors[kind.name] = declare(_bind(run, kind.name))
    return actors


def _bind(run: Run, kind: str) -> Callable[[str], None]:
    def execute_task(task_id: str) -> None:
        message = CurrentMessage.get_current_message()
        trace = message.options.get(TRACE_OPTION) if message is not None else None
        run(kind, task_id, dict(trace) if isinstance(trace, dict) else {})

    return execute_task
