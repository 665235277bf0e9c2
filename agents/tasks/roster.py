"""Which processes execute tasks: each ``aitp worker`` registers itself in Redis and keeps its entry fresh.

A worker writes ``{prefix}:workers:{id}`` (JSON: host, pid, threads, queues,
started_at, beat_at, and ``status``: what the process reports of itself at each
beat, such as its browser pool's use) with a time to live of three heartbeat periods
(``tasks.worker_heartbeat_s``) and adds its id to the set ``{prefix}:workers``,
which readers use instead of scanning the keyspace. A thread refreshes the entry
while the worker runs; a graceful stop deletes it. A worker that dies without
stopping drops out when its key expires, and the next reader removes its id
from the set. Only the key's time to live decides who is live, so the clocks of
the machines never need to agree (they only skew the ages shown).

The heartbeat has its own thread and the process's synchronous Redis pool, not
the task loop: a loop busy with a long step must not make a working worker
look dead.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import orjson
import redis

from core.clock import Clock
from core.timefmt import utc_iso

log = logging.getLogger("aitp.agents.roster")
MISSED_BEATS = 3  # periods a worker may miss before it counts as gone


@dataclass(frozen=True, slots=True)
class WorkerEntry:
    """One process executing tasks, as it last described itself."""

    id: str
    host: str
    pid: int
    threads: int  # worker threads alive
    queues: tuple[str, ...]
    started_at: datetime
    beat_at: datetime
    status: dict[str, Any] = field(default_factory=dict)  # name -> figures, e.g. "browser_pool"

    @classmethod
    def of_this_process(cls, threads: int, queues: set[str], now: datetime) -> WorkerEntry:
        host, pid = socket.gethostname(), os.getpid()
        # The suffix keeps two processes apart that share a host name and pid (containers restarted alike).
        return cls(f"{host}:{pid}:{secrets.token_hex(3)}", host, pid, threads, tuple(sorted(queues)), now, now)

    def wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "host": self.host,
            "pid": self.pid,
            "threads": self.threads,
            "queues": list(self.queues),
            "started_at": utc_iso(self.started_at),
            "beat_at": utc_iso(self.beat_at),
            "status": self.status,
        }

    @classmethod
    def load(cls, raw: bytes | str) -> WorkerEntry:
        data = orjson.loads(raw)
        return cls(
            id=str(data["id"]),
            host=str(data["host"]),
            pid=int(data["pid"]),
            threads=int(data["threads"]),
            queues=tuple(data["queues"]),
            started_at=datetime.fromisoformat(data["started_at"]),
            beat_at=datetime.fromisoformat(data["beat_at"]),
            status=dict(data.get("status") or {}),  # entries of older workers have none
        )

    def view(self, now: datetime) -> dict[str, Any]:
        """As stored, plus its age and the time since its last heartbeat, by the reader's clock."""
        return {
            **self.wire(),
            "age_s": round(max(0.0, (now - self.started_at).total_seconds()), 1),
            "last_beat_s": round(max(0.0, (now - self.beat_at).total_seconds()), 1),
        }


class WorkerRoster:
    """The live worker entries under one Redis prefix (blocking calls: run them off the event loop)."""

    def __init__(self, client: redis.Redis, prefix: str, heartbeat_s: float) -> None:
        self._redis = client
        self._index = f"{prefix}:workers"
        self.heartbeat_s = heartbeat_s

    @property
    def ttl_ms(self) -> int:
        return max(1, round(self.heartbeat_s * MISSED_BEATS * 1000))

    def _key(self, worker_id: str) -> str:
        return f"{self._index}:{worker_id}"

    def beat(self, entry: WorkerEntry) -> None:
        pipe = self._redis.pipeline(transaction=True)
        pipe.set(self._key(entry.id), orjson.dumps(entry.wire()), px=self.ttl_ms)
        pipe.sadd(self._index, entry.id)
        pipe.execute()

    def leave(self, worker_id: str) -> None:
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(self._key(worker_id))
        pipe.srem(self._index, worker_id)
        pipe.execute()

    def live(self) -> list[WorkerEntry]:
        """Every worker whose entry has not expired, by host and pid; ids of expired ones are removed."""
        ids = sorted(_text(member) for member in self._redis.smembers(self._index))
        if not ids:
            return []
        found: list[WorkerEntry] = []
        gone: list[str] = []
        for worker_id, raw in zip(ids, self._redis.mget([self._key(i) for i in ids]), strict=True):
            if raw is None:
                gone.append(worker_id)
            else:
                found.append(WorkerEntry.load(raw))
        if gone:
            self._redis.srem(self._index, *gone)
        return sorted(found, key=lambda e: (e.host, e.pid, e.id))


class Heartbeat:
    """Keeps one process's entry in the roster fresh from a daemon thread; :meth:`stop` removes it."""

    def __init__(
        self,
        roster: WorkerRoster,
        entry: WorkerEntry,
        clock: Clock,
        threads: Callable[[], int],
        status: Callable[[], dict[str, Any]] = dict,
    ) -> None:
        self._roster = roster
        self._entry = entry
        self._clock = clock
        self._threads = threads
        self._status = status
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def worker_id(self) -> str:
        return self._entry.id

    def start(self) -> None:
        """Register now (blocking), so the worker is listed once it says it is ready; then refresh on a thread."""
        self._beat()
        self._thread = threading.Thread(target=self._run, name="aitp-worker-heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop refreshing and delete the entry (blocking)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self._roster.heartbeat_s + 5)
        try:
            self._roster.leave(self._entry.id)
        except redis.RedisError as exc:
            log.warning("could not remove this worker from the worker list (it expires by itself): %s", exc)

    def _beat(self) -> None:
        self._entry = replace(self._entry, threads=self._threads(), beat_at=self._clock.now(), status=self._status())
        self._roster.beat(self._entry)

    def _run(self) -> None:
        while not self._stop.wait(self._roster.heartbeat_s):
            try:
                self._beat()
            except redis.RedisError as exc:
                # The next beat tries again; after three missed ones the monitor stops listing this worker.
                log.warning("worker heartbeat failed: %s", exc)


def _text(value: bytes | str) -> str:
    # The process's pool returns bytes; a client made with decode_responses returns str.
    return value if isinstance(value, str) else value.decode()
