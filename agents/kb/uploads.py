"""Staged uploads (``kb_uploads``): a large document parsed and chunked at upload, embedded later by its task.

The row lives in the database rather than in a local file because in
distributed mode the task runs on whichever ``aitp worker`` takes it. It is
deleted in the transaction that writes the document's row, when the task
fails or is cancelled, and, should both be missed (a worker killed for good),
once it is older than any task could still use it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import cast

from sqlalchemy import Table, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from core.clock import Clock

from .chunking import Chunk
from .preparation import Prepared
from .tables import KBUploadRow

uploads = cast(Table, KBUploadRow.__table__)


@dataclass(frozen=True, slots=True)
class StagedUpload:
    id: str  # also the id the document gets
    project_id: str
    source: str | None
    title: str | None
    content_hash: str
    prepared: Prepared


class UploadStore:
    def __init__(self, db: AsyncEngine, stale_after: timedelta, clock: Clock) -> None:
        self.db = db
        self.stale_after = stale_after
        self.clock = clock

    async def stage(
        self, project_id: str, prepared: Prepared, source: str | None, title: str | None, content_hash: str
    ) -> StagedUpload:
        now = self.clock.now()
        staged = StagedUpload(uuid.uuid4().hex, project_id, source, title, content_hash, prepared)
        values = {
            "id": staged.id,
            "project_id": project_id,
            "source": source,
            "title": title,
            "content_type": prepared.content_type,
            "content_hash": content_hash,
            "text": prepared.text,
            "chunks": [[c.section, c.text, c.content_hash] for c in prepared.chunks],
            "created_at": now,
        }
        async with self.db.begin() as conn:
            await conn.execute(delete(uploads).where(uploads.c.created_at < now - self.stale_after))
            await conn.execute(insert(uploads), values)
        return staged

    async def get(self, project_id: str, upload_id: str) -> StagedUpload | None:
        query = select(uploads).where(uploads.c.id == upload_id, uploads.c.project_id == project_id)
        async with self.db.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        if row is None:
            return None
        chunks = [Chunk(i, section, text, digest) for i, (section, text, digest) in enumerate(row["chunks"])]
        prepared = Prepared(row["content_type"], row["title"], row["text"], chunks)
        return StagedUpload(row["id"], row["project_id"], row["source"], row["title"], row["content_hash"], prepared)

    async def drop(self, project_id: str, upload_id: str, conn: AsyncConnection | None = None) -> None:
        statement = delete(uploads).where(uploads.c.id == upload_id, uploads.c.project_id == project_id)
        if conn is not None:
            await conn.execute(statement)
            return
        async with self.db.begin() as own:
            await own.execute(statement)
