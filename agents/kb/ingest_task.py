"""``kb.ingest``: embed a staged upload (a large document ``POST /api/kb/documents`` answered 202 for).

The upload was parsed, chunked and checked against every limit before the
task existed; the task embeds its chunks in batches, reporting ``embedding:
N of M chunks`` as its step and progress, then writes the document. A cancel
stops it at the next batch, with nothing written. A failure or a cancel drops
the staged upload; an interrupted execution (lease lost, shutdown) keeps it,
so that the next execution starts again from the upload.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from core.errors import APIError, ServiceUnavailable

from ..tasks.context import TaskContext
from ..tasks.kinds import Kind, TaskError, TransientError
from .store import KnowledgeBase

KIND = "kb.ingest"


class IngestTaskInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    upload_id: str = Field(pattern=r"^[0-9a-f]{32}$", description="the staged upload, made by POST /api/kb/documents")
    source: str | None = Field(default=None, max_length=500)
    title: str | None = Field(default=None, max_length=500)
    chunks: int = Field(default=0, ge=0, description="chunks to embed")
    chars: int = Field(default=0, ge=0, description="characters of text")


def kb_ingest_kind(kb: KnowledgeBase) -> Kind:
    async def run(ctx: TaskContext, spec: IngestTaskInput) -> dict[str, Any]:
        async def progress(done: int, total: int) -> None:
            await ctx.step(f"embedding: {done} of {total} chunks", 5 + 90 * done // max(total, 1))

        try:
            await ctx.step(f"embedding: 0 of {spec.chunks} chunks", 5)
            result = await kb.ingest_staged(ctx.project_id, spec.upload_id, progress)
        except ServiceUnavailable as exc:
            raise TransientError(exc.message) from None
        except APIError as exc:
            await kb.drop_staged(ctx.project_id, spec.upload_id)
            raise TaskError(exc.message, type=exc.code or exc.type) from None
        except Exception:
            await kb.drop_staged(ctx.project_id, spec.upload_id)
            raise
        return {"document": result.document.as_dict(), "created": result.created}

    return Kind(
        name=KIND,
        input_model=IngestTaskInput,
        run=run,
        description="embeds and stores a large knowledge-base document uploaded with POST /api/kb/documents",
    )
