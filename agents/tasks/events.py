"""Live task events: an in-process fan-out, and Redis pub/sub across processes.

Every event is first written to ``task_events`` (the durable log that SSE
replays); the bus only carries it live to the subscribers of its project.
Losing a live event is harmless: readers catch up from the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from dataclasses import asdict, dataclass
from typing import Any

import orjson
import redis

log = logging.getLogger("aitp.agents.events")

# What the WebSocket pushes; the SSE stream carries every event type.
NOTIFY_TYPES = frozenset(
    {"task_started", "task_progress", "task_need_review", "task_failed", "task_succeeded", "task_cancelled"}
)
TERMINAL_TYPES = frozenset({"task_succeeded", "task_failed", "task_cancelled"})


@dataclass(frozen=True, slots=True)
class TaskEvent:
    id: int
    task_id: str
    project_id: str
    type: str
    data: dict[str, Any] | None
    created_at: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskEvent:
        return cls(**{name: data[name] for name in cls.__dataclass_fields__})


class Subscription:
    """Events of one project (``None``: every project), queued on the subscriber's event loop."""

    def __init__(self, bus: LocalBus, project_id: str | None, size: int = 1000) -> None:
        self.project_id = project_id
        self._bus = bus
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[TaskEvent] = asyncio.Queue(maxsize=size)

    def matches(self, event: TaskEvent) -> bool:
        return self.project_id is None or self.project_id == event.project_id

    def offer(self, event: TaskEvent) -> None:
        """Called from any thread; a subscriber too slow to keep up loses live events, not the log."""
        with contextlib.suppress(RuntimeError):  # the subscriber's loop has closed
            self._loop.call_soon_threadsafe(self._put, event)

    def _put(self, event: TaskEvent) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(event)

    async def get(self, timeout: float) -> TaskEvent | None:
        try:
            return await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return None

    def close(self) -> None:
        self._bus.unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LocalBus:
    """Fan-out inside one process (embedded mode)."""

    def __init__(self) -> None:
        self._subs: set[Subscription] = set()
        self._lock = threading.Lock()

    def subscribe(self, project_id: str | None) -> Subscription:
        sub = Subscription(self, project_id)
        with self._lock:
            self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._subs.discard(sub)

    def publish(self, event: TaskEvent) -> None:
        self.deliver(event)

    def deliver(self, event: TaskEvent) -> None:
        with self._lock:
            subs = [s for s in self._subs if s.matches(event)]
        for sub in subs:
            sub.offer(event)

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


class RedisBus(LocalBus):
    """Publishes to ``{prefix}:task-events:{project}``; with ``listen``, one thread relays every
    project's channel to this process's subscribers (one Redis connection, however many clients)."""

    def __init__(self, client: redis.Redis, prefix: str, *, listen: bool) -> None:
        super().__init__()
        self._client = client
        self._prefix = f"{prefix}:task-events:"
        self._listen = listen
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def publish(self, event: TaskEvent) -> None:
        try:
            self._client.publish(self._prefix + event.project_id, orjson.dumps(event.to_dict()))
        except redis.RedisError as exc:
            log.warning("could not publish task event %s: %s (readers catch up from the log)", event.id, exc)

    def start(self) -> None:
        if self._listen and self._thread is None:
            self._thread = threading.Thread(target=self._relay, name="aitp-task-events", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=3)
            self._thread = None

    def _relay(self) -> None:
        while not self._stopping.is_set():
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
            try:
                pubsub.psubscribe(self._prefix + "*")
                while not self._stopping.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is not None and message["type"] == "pmessage":
                        self.deliver(TaskEvent.from_dict(orjson.loads(message["data"])))
            except (redis.RedisError, ValueError, KeyError, TypeError) as exc:
                log.warning("task event relay lost Redis (%s); reconnecting", exc)
                self._stopping.wait(1.0)
            finally:
                with contextlib.suppress(redis.RedisError):
                    pubsub.close()
