"""Knowledge-base REST API under ``/api/kb``: ingest, list, read, delete documents, and search.

Every key acts on its own project; another project's document answers 404,
exactly like a missing one. Any key may list and search; ingesting and
deleting need a member or admin key.

``POST /api/kb/documents`` takes either ``multipart/form-data`` (a ``file``
field, optional ``source``, ``title`` and ``content_type``) or JSON
``{"text", "source", "title", "content_type"}``. It answers 201 with a new
document, or 200 with the existing one when the project already holds the
same content. A document of more than ``kb.sync_ingest_max_chunks`` chunks
answers 202 with a ``kb.ingest`` task instead (``location: /api/tasks/{id}``):
its progress counts the chunks embedded, and its result holds the document.

Every upload is parsed and chunked in a memory-bounded child process; a
document past a limit (unpacked size, compression ratio, pages, text, chunks,
parse time) is refused with a 400 naming the limit and its ``kb.*`` setting
before anything is embedded. A client that disconnects during a synchronous
ingest stops it; nothing of the document is kept.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

import redis
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from core.errors import InvalidRequest, PayloadTooLarge
from core.http import JSONResponse, read_json
from core.identity.middleware import principal_of
from core.identity.principal import Principal
from core.validation import parse, query_int

from ..tasks.store import task_view
from .ingest_task import KIND, IngestTaskInput
from .preparation import Prepared
from .store import KnowledgeBase

if TYPE_CHECKING:
    from ..tasks.runtime import TaskRuntime

log = logging.getLogger("aitp.agents.kb.routes")
MAX_QUERY_CHARS = 2000
_FORM_SLACK = 64 * 1024  # multipart boundaries and the small fields around the file
_DISCONNECT_POLL_S = 0.25


class TextDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, description="the document itself")
    source: str | None = Field(default=None, max_length=500, description="where it comes from; a new version "
                               "of the same source replaces the old one")  # fmt: skip
    title: str | None = Field(default=None, max_length=500)
    content_type: str | None = Field(
        default=None, max_length=100, description="text/plain (default), text/markdown or text/html"
    )


def require_writer(principal: Principal) -> None:
    principal.require_role("member", "it can search and list the knowledge base but not add or delete documents")


def kb_routes(kb: KnowledgeBase, max_upload_bytes: int, tasks: TaskRuntime | None = None) -> list[BaseRoute]:
    """The routes; without ``tasks`` every ingest is synchronous, whatever its size."""

    def too_large(size: int | None = None) -> PayloadTooLarge:
        got = f" ({size} bytes)" if size is not None else ""
        return PayloadTooLarge(
            f"the document is larger than the limit of {max_upload_bytes} bytes{got}; "
            "split it, or raise kb.max_upload_bytes",
            param="file",
        )

    async def ingest(request: Request) -> Response:
        principal = principal_of(request)
        require_writer(principal)
        media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media_type == "multipart/form-data":
            fields = await _read_upload(request, max_upload_bytes, too_large)
        else:
            spec = parse(TextDocument, await read_json(request))
            if not spec.text.strip():
                raise InvalidRequest("'text' is empty; send the document's text", param="text")
            if len(spec.text.encode()) > max_upload_bytes:
                raise too_large(len(spec.text.encode()))
            fields = {"data": spec.text, "source": spec.source, "title": spec.title, "content_type": spec.content_type}
        return await _until_disconnected(request, add_document(principal, fields))

    async def add_document(principal: Principal, fields: dict[str, Any]) -> Response:
        project = principal.project_id
        filename, source, title = fields.get("filename"), fields.get("source"), fields.get("title")
        prepared = await kb.prepare(fields["data"], filename=filename, content_type=fields.get("content_type"))
        if tasks is not None and len(prepared.chunks) > kb.settings.sync_ingest_max_chunks:
            existing = await kb.existing(project, prepared)
            if existing is not None:
                return JSONResponse(existing.as_dict(), status_code=200)
            return await submit_ingest(tasks, principal, prepared, source, title, filename)
        result = await kb.add(project, prepared, source=source, title=title, filename=filename)
        return JSONResponse(result.document.as_dict(), status_code=201 if result.created else 200)

    async def submit_ingest(
        tasks: TaskRuntime,
        principal: Principal,
        prepared: Prepared,
        source: str | None,
        title: str | None,
        filename: str | None,
    ) -> Response:
        staged = await kb.stage(principal.project_id, prepared, source=source, title=title, filename=filename)
        spec = IngestTaskInput(
            upload_id=staged.id,
            source=staged.source,
            title=staged.title,
            chunks=len(prepared.chunks),
            chars=len(prepared.text),
        )
        try:
            row, _ = await tasks.store.submit(
                project_id=principal.project_id,
                key_id=principal.key_id,
                kind=KIND,
                input=spec.model_dump(mode="json"),
                idempotency_key=None,
                priority=0,
                max_attempts=tasks.settings.max_attempts,
            )
        except BaseException:
            await asyncio.shield(kb.drop_staged(principal.project_id, staged.id))
            raise
        try:
            tasks.enqueue(row["id"], row["kind"])
        except (redis.RedisError, OSError) as exc:
            # The row is durable: the reaper enqueues pending tasks nobody picked up.
            log.error("could not enqueue task %s (%s); the reaper will retry", row["id"], exc)
        return JSONResponse(task_view(row), status_code=202, headers={"location": f"/api/tasks/{row['id']}"})

    async def list_documents(request: Request) -> Response:
        principal = principal_of(request)
        params = request.query_params
        limit = query_int(params, "limit", 50, 1, 500)
        offset = query_int(params, "offset", 0, 0, 10**9)
        total, items = await kb.list_documents(
            principal.project_id, limit=limit, offset=offset, source=params.get("source") or None
        )
        return JSONResponse({"total": total, "items": [d.as_dict() for d in items], "limit": limit, "offset": offset})

    async def get_document(request: Request) -> Response:
        principal = principal_of(request)
        doc_id = request.path_params["doc_id"]
        info = (await kb.get_document(principal.project_id, doc_id)).as_dict()
        if request.query_params.get("include") == "text":
            info["text"] = await kb.document_text(principal.project_id, doc_id)
        return JSONResponse(info)

    async def delete_document(request: Request) -> Response:
        principal = principal_of(request)
        require_writer(principal)
        await kb.delete_document(principal.project_id, request.path_params["doc_id"])
        return Response(status_code=204)

    async def search(request: Request) -> Response:
        principal = principal_of(request)
        params = request.query_params
        query = (params.get("q") or "").strip()
        if not query:
            raise InvalidRequest("query parameter 'q' is required: the words to search for", param="q")
        if len(query) > MAX_QUERY_CHARS:
            raise InvalidRequest(f"query parameter 'q' is longer than {MAX_QUERY_CHARS} characters", param="q")
        k = query_int(params, "k", 5, 1, 50)
        hits = await kb.search(
            principal.project_id, query, k=k, source=params.get("source") or None, kind=params.get("kind") or None
        )
        return JSONResponse({"items": [h.as_dict() for h in hits]})

    return [
        Route("/api/kb/documents", ingest, methods=["POST"]),
        Route("/api/kb/documents", list_documents, methods=["GET"]),
        Route("/api/kb/documents/{doc_id}", get_document, methods=["GET"]),
        Route("/api/kb/documents/{doc_id}", delete_document, methods=["DELETE"]),
        Route("/api/kb/search", search, methods=["GET"]),
    ]


async def _until_disconnected(request: Request, work: Coroutine[Any, Any, Response]) -> Response:
    """``work``'s response, unless the client goes away first: then the work is cancelled (and cleans up)."""
    job = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({job}, timeout=_DISCONNECT_POLL_S)
            if done:
                return job.result()
            if await request.is_disconnected():
                job.cancel()
                await asyncio.wait({job})
                failed = None if job.cancelled() else job.exception()  # retrieved, so asyncio does not warn
                log.info(
                    "client disconnected during a knowledge-base ingest: stopped, nothing stored%s",
                    f" ({type(failed).__name__}: {failed})" if failed is not None else "",
                )
                return Response(status_code=499)  # nobody reads it; the access log shows what happened
    finally:
        if not job.done():
            job.cancel()


async def _read_upload(
    request: Request, max_upload_bytes: int, too_large: Callable[[int | None], PayloadTooLarge]
) -> dict[str, Any]:
    """The ``file`` field and the optional text fields of a multipart upload."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > max_upload_bytes + _FORM_SLACK:
        raise too_large(int(length))
    try:
        form = await request.form(max_files=1, max_fields=10)
    except (MultiPartException, HTTPException) as exc:
        detail = exc.message if isinstance(exc, MultiPartException) else exc.detail
        raise InvalidRequest(f"the multipart form could not be read: {detail}", param="file") from None
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidRequest(
                "multipart upload needs a 'file' field holding the document (or send JSON with 'text')", param="file"
            )
        data = await upload.read(max_upload_bytes + 1)
        if len(data) > max_upload_bytes:
            raise too_large(None)
        if not data:
            raise InvalidRequest("the uploaded file is empty", param="file")
        fields: dict[str, Any] = {"data": data, "filename": upload.filename, "content_type": upload.content_type}
        for name in ("source", "title", "content_type"):
            value = form.get(name)
            if isinstance(value, str) and value.strip():
                fields[name] = value.strip()
        return fields
    finally:
        await form.close()
