"""The knowledge base: documents in SQL (``kb_documents``), their chunks and vectors in a per-project Chroma collection.

Ingest order, so that a failure leaves no half document: parse and chunk (in
a memory-bounded child process, :mod:`agents.kb.parser_pool`), embed (in
batches, each a point where a cancelled ingest stops), write the chunks to
Chroma, then insert the SQL row; if the ingest is cancelled or the row cannot
be written the chunks are deleted again. A document exists when its row does.

A large document is staged (:mod:`agents.kb.uploads`) after parsing and
embedded by a ``kb.ingest`` task (:mod:`agents.kb.ingest_task`) that reports
the chunks embedded so far as its progress.

Re-ingesting content already in the project (same SHA-256 of the normalised
text, whitespace runs counted as one space) is a no-op that returns the existing document (``created=False``),
whatever source or title came with it. A document with the same ``source``
but different content is a new version: it replaces the old one, whose row
goes in the same transaction as the new row is written and whose chunks are
deleted after that.

Accepted test cases live beside the documents as chunks of kind ``example``
(no SQL row; their owner keeps them), upserted and deleted by their id.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any, Literal, cast

from sqlalchemy import Table, delete, func, insert, select
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from core.clock import Clock
from core.errors import APIError, InvalidRequest, NotFound
from core.settings import Settings
from core.timefmt import utc_iso

from .chunking import Chunk
from .collections import ChromaCollections, Metadata
from .embedding import Embedder
from .parser_pool import ParserPool
from .preparation import Prepared
from .tables import KBDocumentRow
from .uploads import StagedUpload, UploadStore

log = logging.getLogger("aitp.agents.kb")
documents = cast(Table, KBDocumentRow.__table__)
INFO_COLUMNS = [c for c in documents.c if c.name != "text"]
DOCUMENT, EXAMPLE = "document", "example"
_RESERVED = {"kind", "doc_id", "chunk", "source", "title", "section", "content_hash"}
EMBED_BATCH = 8  # chunks embedded per call: the grain of progress reports and of stopping (a few seconds)
Progress = Callable[[int, int], Awaitable[None]]  # (chunks embedded so far, chunks in all)


@dataclass(frozen=True, slots=True)
class DocumentInfo:
    id: str
    project_id: str
    source: str | None
    title: str | None
    content_type: str
    content_hash: str
    chunks: int
    chars: int
    created_at: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class IngestResult:
    document: DocumentInfo
    created: bool


@dataclass(frozen=True, slots=True)
class Hit:
    doc_id: str  # the document id, or the example id for kind "example"
    chunk_id: str
    text: str
    score: float  # cosine similarity: 1 identical, 0 unrelated
    source: str | None
    title: str | None
    section: str | None
    kind: Literal["document", "example"]
    metadata: dict[str, str | int | float | bool] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def document_info(row: RowMapping) -> DocumentInfo:
    return DocumentInfo(
        id=row["id"],
        project_id=row["project_id"],
        source=row["source"],
        title=row["title"],
        content_type=row["content_type"],
        content_hash=row["content_hash"],
        chunks=row["chunks"],
        chars=row["chars"],
        created_at=utc_iso(row["created_at"]) or "",
    )


class KnowledgeBase:
    def __init__(self, settings: Settings, db: AsyncEngine, embedder: Embedder, clock: Clock) -> None:
        self.settings = settings.kb
        self.db = db
        self.clock = clock
        self.embedder = embedder
        self.chroma = ChromaCollections(settings, embedder)
        self.parsers = ParserPool(settings.kb)
        # A staged upload older than a task could still start and finish in is an orphan.
        tasks = settings.tasks
        longest = max([tasks.time_limit_s, *tasks.time_limits.values()]) * tasks.max_attempts
        self.uploads = UploadStore(db, timedelta(seconds=tasks.max_age_s + longest), clock)

    # ----------------------------------------------------------- documents

    async def ingest(
        self,
        project_id: str,
        *,
        data: bytes | str,
        filename: str | None = None,
        content_type: str | None = None,
        source: str | None = None,
        title: str | None = None,
        progress: Progress | None = None,
    ) -> IngestResult:
        """Parse, chunk, embed and store one document (or find the same content already stored)."""
        prepared = await self.prepare(data, filename=filename, content_type=content_type)
        return await self.add(project_id, prepared, source=source, title=title, filename=filename, progress=progress)

    async def prepare(
        self, data: bytes | str, *, filename: str | None = None, content_type: str | None = None
    ) -> Prepared:
        """The document parsed and chunked under the ``kb.*`` limits; a 400 naming the limit it went past."""
        return await self.parsers.prepare(data, content_type, filename)

    async def existing(self, project_id: str, prepared: Prepared) -> DocumentInfo | None:
        """The project's document with the same content, if there is one."""
        return await self._by_hash(project_id, content_digest(prepared.text))

    async def add(
        self,
        project_id: str,
        prepared: Prepared,
        *,
        source: str | None = None,
        title: str | None = None,
        filename: str | None = None,
        progress: Progress | None = None,
        staged_id: str | None = None,
    ) -> IngestResult:
        """Embed and store a prepared document; ``staged_id`` names the staged upload it came from (and its id)."""
        content_hash = content_digest(prepared.text)
        existing = await self._by_hash(project_id, content_hash)
        if existing is not None:
            return IngestResult(existing, False)
        source = _clean(source) or _clean(filename)
        title = _clean(title) or prepared.title or _clean(filename) or _first_line(prepared.text)
        doc_id = staged_id or uuid.uuid4().hex
        try:
            count = await self._write_chunks(project_id, doc_id, source, title, prepared.chunks, progress)
            row = await self._insert_row(project_id, doc_id, source, title, prepared, content_hash, count, staged_id)
        except IntegrityError:
            # The same content arrived concurrently and won: ours is the duplicate.
            await self._drop_chunks(project_id, doc_id)
            existing = await self._by_hash(project_id, content_hash)
            if existing is None:
                raise
            return IngestResult(existing, False)
        except BaseException:
            # Cancelled (the client went away, the task was cancelled) or failed: no half document stays.
            await asyncio.shield(self._drop_chunks(project_id, doc_id))
            raise
        return IngestResult(row, True)

    # ------------------------------------------------------ staged uploads

    async def stage(
        self,
        project_id: str,
        prepared: Prepared,
        *,
        source: str | None = None,
        title: str | None = None,
        filename: str | None = None,
    ) -> StagedUpload:
        """Keep a prepared document for a ``kb.ingest`` task to embed; its id becomes the document's."""
        source = _clean(source) or _clean(filename)
        title = _clean(title) or prepared.title or _clean(filename) or _first_line(prepared.text)
        return await self.uploads.stage(project_id, prepared, source, title, content_digest(prepared.text))

    async def ingest_staged(self, project_id: str, upload_id: str, progress: Progress | None = None) -> IngestResult:
        staged = await self.uploads.get(project_id, upload_id)
        if staged is None:
            # An earlier execution wrote the document (and dropped the upload) but did not record the result.
            try:
                return IngestResult(await self.get_document(project_id, upload_id), True)
            except NotFound:
                raise NotFound(
                    f"the staged upload '{upload_id}' is gone (ingested, cancelled or expired); upload the document "
                    "again",
                    code="upload_not_found",
                ) from None
        result = await self.add(
            project_id,
            staged.prepared,
            source=staged.source,
            title=staged.title,
            progress=progress,
            staged_id=staged.id,
        )
        if not result.created:
            await self.uploads.drop(project_id, upload_id)
        return result

    async def drop_staged(self, project_id: str, upload_id: str) -> None:
        await self.uploads.drop(project_id, upload_id)

    async def list_documents(
        self, project_id: str, *, limit: int = 50, offset: int = 0, source: str | None = None
    ) -> tuple[int, list[DocumentInfo]]:
        where = [documents.c.project_id == project_id]
        if source is not None:
            where.append(documents.c.source == source)
        query = (
            select(*INFO_COLUMNS)
            .where(*where)
            .order_by(documents.c.created_at.desc(), documents.c.id)
            .limit(limit)
            .offset(offset)
        )
        async with self.db.connect() as conn:
            total = (await conn.execute(select(func.count()).select_from(documents).where(*where))).scalar_one()
            rows = (await conn.execute(query)).mappings().all()
        return int(total), [document_info(r) for r in rows]

    async def get_document(self, project_id: str, doc_id: str) -> DocumentInfo:
        query = select(*INFO_COLUMNS).where(documents.c.id == doc_id, documents.c.project_id == project_id)
        async with self.db.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        if row is None:
            raise _not_found(doc_id)
        return document_info(row)

    async def document_text(self, project_id: str, doc_id: str) -> str:
        query = select(documents.c.text).where(documents.c.id == doc_id, documents.c.project_id == project_id)
        async with self.db.connect() as conn:
            text = (await conn.execute(query)).scalar_one_or_none()
        if text is None:
            raise _not_found(doc_id)
        return str(text)

    async def delete_document(self, project_id: str, doc_id: str) -> None:
        statement = delete(documents).where(documents.c.id == doc_id, documents.c.project_id == project_id)
        async with self.db.begin() as conn:
            if (await conn.execute(statement)).rowcount == 0:
                raise _not_found(doc_id)
        await self._drop_chunks(project_id, doc_id)

    # -------------------------------------------------------------- search

    async def search(
        self,
        project_id: str,
        query: str,
        *,
        k: int = 5,
        source: str | None = None,
        kind: str | None = None,
        vector: list[float] | None = None,
    ) -> list[Hit]:
        """The ``k`` closest chunks; pass ``vector`` (``embedder.query(query)``) to reuse one query embedding."""
        query = query.strip()
        if not query:
            raise InvalidRequest("the search query is empty; pass some words in q", param="q")
        if kind is not None and kind not in (DOCUMENT, EXAMPLE):
            raise InvalidRequest(f"kind must be 'document' or 'example', got {kind!r}", param="kind")
        filters: list[dict[str, Any]] = [
            {field: value} for field, value in (("source", source), ("kind", kind)) if value
        ]
        where = filters[0] if len(filters) == 1 else ({"$and": filters} if filters else None)
        if vector is None:
            vector = await self.embedder.query(project_id, query)
        found = await asyncio.to_thread(self.chroma.query, project_id, vector, max(1, min(k, 50)), where)
        return [_hit(chunk_id, text, meta, distance) for chunk_id, text, meta, distance in found]

    async def embed(self, project_id: str, texts: list[str]) -> list[list[float]]:
        """Passage vectors of ``texts`` (for near-duplicate detection: compare with a dot product)."""
        return await self.embedder.passages(project_id, texts)

    # ------------------------------------------------------------ examples

    async def add_example(
        self, project_id: str, example_id: str, text: str, metadata: dict[str, str | int | float | bool]
    ) -> None:
        """Store (or replace) an accepted example; ``metadata`` values come back on its hits."""
        text = text.strip()
        if not text:
            raise InvalidRequest("an example needs some text", param="text")
        meta: dict[str, str | int | float | bool] = {
            k: v for k, v in metadata.items() if k not in _RESERVED and isinstance(v, str | int | float | bool)
        }
        meta.update(
            kind=EXAMPLE,
            doc_id=example_id,
            chunk=0,
            source=str(metadata.get("source", "")),
            title=str(metadata.get("title", "")),
            section=str(metadata.get("section", "")),
            content_hash=hashlib.sha256(text.encode()).hexdigest(),
        )
        [vector] = await self.embedder.passages(project_id, [text])
        await asyncio.to_thread(
            self.chroma.upsert, project_id, [_example_chunk_id(example_id)], [vector], [text], [meta]
        )

    async def delete_example(self, project_id: str, example_id: str) -> None:
        await asyncio.to_thread(self.chroma.delete, project_id, ids=[_example_chunk_id(example_id)])

    async def close(self) -> None:
        await asyncio.to_thread(self.parsers.close)
        await asyncio.to_thread(self.chroma.close)

    # ------------------------------------------------------------- helpers

    async def _by_hash(self, project_id: str, content_hash: str) -> DocumentInfo | None:
        query = select(*INFO_COLUMNS).where(
            documents.c.project_id == project_id, documents.c.content_hash == content_hash
        )
        async with self.db.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        return None if row is None else document_info(row)

    async def _write_chunks(
        self,
        project_id: str,
        doc_id: str,
        source: str | None,
        title: str | None,
        chunks: Sequence[Chunk],
        progress: Progress | None,
    ) -> int:
        # The heading path goes into the embedded text: "Login > Password" tells what a bare paragraph is about.
        texts = [f"{c.section}\n{c.text}" if c.section else c.text for c in chunks]
        vectors: list[list[float]] = []
        for start in range(0, len(texts), EMBED_BATCH):
            vectors.extend(await self.embedder.passages(project_id, texts[start : start + EMBED_BATCH]))
            if progress is not None:
                await progress(len(vectors), len(texts))
        metadatas: list[Metadata] = [
            {
                "kind": DOCUMENT,
                "doc_id": doc_id,
                "chunk": c.index,
                "source": source or "",
                "title": title or "",
                "section": c.section,
                "content_hash": c.content_hash,
            }
            for c in chunks
        ]
        ids = [f"{doc_id}:{c.index}" for c in chunks]
        await asyncio.to_thread(self.chroma.upsert, project_id, ids, vectors, [c.text for c in chunks], metadatas)
        return len(chunks)

    async def _insert_row(
        self,
        project_id: str,
        doc_id: str,
        source: str | None,
        title: str | None,
        parsed: Prepared,
        content_hash: str,
        chunks: int,
        staged_id: str | None = None,
    ) -> DocumentInfo:
        values = {
            "id": doc_id,
            "project_id": project_id,
            "source": source,
            "title": title,
            "content_type": parsed.content_type,
            "content_hash": content_hash,
            "chunks": chunks,
            "chars": len(parsed.text),
            "text": parsed.text,
            "created_at": self.clock.now(),
        }
        replaced: list[str] = []
        async with self.db.begin() as conn:
            if source is not None:
                old = select(documents.c.id).where(documents.c.project_id == project_id, documents.c.source == source)
                replaced = list((await conn.execute(old)).scalars())
                if replaced:
                    await conn.execute(delete(documents).where(documents.c.id.in_(replaced)))
            row = (await conn.execute(insert(documents).returning(*INFO_COLUMNS), values)).mappings().one()
            if staged_id is not None:
                await self.uploads.drop(project_id, staged_id, conn)
        for old_id in replaced:
            await self._drop_chunks(project_id, old_id)
        return document_info(row)

    async def _drop_chunks(self, project_id: str, doc_id: str) -> None:
        """Delete a document's chunks; a failure is logged (the row is what makes a document exist)."""
        try:
            where = {"$and": [{"doc_id": doc_id}, {"kind": DOCUMENT}]}
            await asyncio.to_thread(self.chroma.delete, project_id, where=where)
        except (APIError, OSError) as exc:
            log.error("could not delete the chunks of document %s in project %s: %s", doc_id, project_id, exc)


def content_digest(text: str) -> str:
    """SHA-256 of the normalised text with runs of whitespace as one space: re-wrapped copies are the same content."""
    return hashlib.sha256(" ".join(text.split()).encode()).hexdigest()


def _hit(chunk_id: str, text: str, meta: dict[str, Any], distance: float) -> Hit:
    kind: Literal["document", "example"] = "example" if meta.get("kind") == EXAMPLE else "document"
    extra = {k: v for k, v in meta.items() if k not in _RESERVED} if kind == EXAMPLE else {}
    return Hit(
        doc_id=str(meta.get("doc_id", "")),
        chunk_id=chunk_id,
        text=text,
        score=round(1.0 - distance, 6),
        source=str(meta.get("source") or "") or None,
        title=str(meta.get("title") or "") or None,
        section=str(meta.get("section") or "") or None,
        kind=kind,
        metadata=extra,
    )


def _example_chunk_id(example_id: str) -> str:
    return f"example:{example_id}"


def _not_found(doc_id: str) -> NotFound:
    return NotFound(
        f"no knowledge-base document '{doc_id}' in this project; GET /api/kb/documents lists them",
        code="document_not_found",
    )


def _clean(value: str | None) -> str | None:
    value = " ".join((value or "").split())
    return value[:500] or None


def _first_line(text: str) -> str | None:
    for line in text.split("\n"):
        if line.strip():
            return line.strip()[:80]
    return None
