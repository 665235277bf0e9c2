"""Usage rows: one per gateway call, written in batches off the request path.

The request handler only enqueues a row; a background task inserts them in
batches (every ``flush_interval_s`` or ``batch_size`` rows) and on shutdown
drains what is left, so a call never waits on the database for its ledger row.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import orjson
from sqlalchemy import Boolean, DateTime, Float, Integer, String, insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base
from core.settings import UsageSettings

log = logging.getLogger("aitp.gateway.usage")


class UsageRecord(Base):
    __tablename__ = "usage_records"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    endpoint: Mapped[str] = mapped_column(String(32))
    project_id: Mapped[str | None] = mapped_column(String(64))
    key_id: Mapped[str | None] = mapped_column(String(64))
    user: Mapped[str | None] = mapped_column(String(256))
    model_requested: Mapped[str] = mapped_column(String(128))
    model_used: Mapped[str | None] = mapped_column(String(256))
    deployment: Mapped[str | None] = mapped_column(String(128))
    tier: Mapped[str | None] = mapped_column(String(16))
    route_reason: Mapped[str | None] = mapped_column(String(128))
    stream: Mapped[bool] = mapped_column(Boolean, default=False)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    # Null on rows written before it was measured, so reports can leave them out of the upstream's share.
    upstream_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    status: Mapped[str] = mapped_column(String(32))
    http_status: Mapped[int] = mapped_column(Integer)
    error_type: Mapped[str | None] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    prompt_name: Mapped[str | None] = mapped_column(String(128))
    prompt_version: Mapped[int | None] = mapped_column(Integer)
    task_id: Mapped[str | None] = mapped_column(String(64), index=True)


@dataclass(slots=True)
class Usage:
    """What one call cost; filled in as the call goes and handed to the recorder once."""

    request_id: str
    endpoint: str
    model_requested: str
    created_at: datetime  # from the recording service's clock, not read here
    stream: bool = False
    project_id: str | None = None
    key_id: str | None = None
    user: str | None = None
    model_used: str | None = None
    deployment: str | None = None
    tier: str | None = None
    route_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    # Of latency_ms, the time spent waiting on the upstream (see gateway.tracing.upstream_span).
    upstream_ms: float = 0.0
    status: str = "ok"
    http_status: int = 200
    error_type: str | None = None
    attempts: int = 1
    prompt_name: str | None = None
    prompt_version: int | None = None
    task_id: str | None = None  # set for a task's model calls


class UsageRecorder:
    """Queues usage rows and writes them in batches; a row is never dropped for a database outage.

    A batch that fails is kept and written first on the next flush. Rows still unwritten at
    shutdown go to ``spill_path`` (one JSON object per line), which the next start writes back.
    """

    def __init__(self, engine: AsyncEngine, settings: UsageSettings, spill_path: Path | None = None) -> None:
        self._engine = engine
        self._settings = settings
        self._spill = spill_path
        self._queue: asyncio.Queue[Usage] = asyncio.Queue()
        self._unwritten: list[Usage] = []
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._lock = asyncio.Lock()
        self.written = 0
        self.failed_batches = 0

    @property
    def backlog(self) -> int:
        """Rows waiting for the database (queued plus kept from failed writes)."""
        return self._queue.qsize() + len(self._unwritten)

    def record(self, usage: Usage) -> None:
        self._queue.put_nowait(usage)

    async def start(self) -> None:
        self._restore_spill()
        self._task = asyncio.create_task(self._run(), name="usage-recorder")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()
        if self._unwritten:
            self._write_spill()

    async def flush(self) -> None:
        async with self._lock:
            while not self._queue.empty():
                self._unwritten.append(self._queue.get_nowait())
            while self._unwritten:
                batch = self._unwritten[: self._settings.batch_size]
                if not await self._write(batch):
                    return  # kept for the next flush
                del self._unwritten[: len(batch)]

    async def _run(self) -> None:
        interval = self._settings.flush_interval_s
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=interval)
            await self.flush()

    async def _write(self, batch: list[Usage]) -> bool:
        rows = [asdict(u) for u in batch]
        for attempt in range(3):
            try:
                async with self._engine.begin() as conn:
                    await conn.execute(insert(UsageRecord), rows)
                self.written += len(rows)
                return True
            except (SQLAlchemyError, OSError, TimeoutError) as exc:
                # The engine hides bound values, so the message names the statement, not the data.
                log.warning("writing %d usage rows failed (attempt %d of 3): %s", len(rows), attempt + 1, _brief(exc))
                await asyncio.sleep(0.2 * (attempt + 1))
        self.failed_batches += 1
        log.error("%d usage rows are kept in memory until the database answers", len(self._unwritten))
        return False

    def _write_spill(self) -> None:
        if self._spill is None:
            log.error("%d usage rows were lost: the database did not come back before shutdown", len(self._unwritten))
            return
        self._spill.parent.mkdir(parents=True, exist_ok=True)
        with self._spill.open("ab") as out:
            for usage in self._unwritten:
                out.write(orjson.dumps(asdict(usage)) + b"\n")
        log.error("%d usage rows were saved to %s for the next start", len(self._unwritten), self._spill)
        self._unwritten.clear()

    def _restore_spill(self) -> None:
        if self._spill is None or not self._spill.exists():
            return
        restored = self._spill.with_suffix(".restoring")
        self._spill.replace(restored)
        for line in restored.read_bytes().splitlines():
            if line.strip():
                data = orjson.loads(line)
                data["created_at"] = datetime.fromisoformat(data["created_at"])
                self._unwritten.append(Usage(**data))
        restored.unlink()
        log.info("restored %d usage rows saved at the last shutdown", len(self._unwritten))


def _brief(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
