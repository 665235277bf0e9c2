"""Knowledge-base REST API under ``/api/kb``: ingest, list, read, delete documents, and search.

The rules (roles, projects, limits) live in :class:`KnowledgeService`; here
are the HTTP parts: multipart uploads, status codes and client disconnects.

``POST /api/kb/documents`` takes either ``multipart/form-data`` (a ``file``
field, optional ``source``, ``title`` and ``content_type``), JSON
``{"text", "source", "title", "content_type"}``, or JSON ``{"url", "title", "source"}``
to fetch the document through the outbound-URL policy (``outbound.*``). It answers 201 with a new
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
from typing import Any

from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from core.errors import InvalidRequest, PayloadTooLarge
from core.http import JSONResponse, read_json
from core.identity.middleware import principal_of
from core.validation import parse, query_int

from .service import MAX_HITS, MAX_OFFSET, MAX_PAGE, Ingested, KnowledgeService, TextDocument, UrlDocument

log = logging.getLogger("aitp.agents.kb.routes")
_FORM_SLACK = 64 * 1024  # multipart boundaries and the small fields around the file
_DISCONNECT_POLL_S = 0.25


def kb_routes(knowledge: KnowledgeService) -> list[BaseRoute]:
    """The routes; each parses the request, calls :class:`KnowledgeService` (as MCP does) and answers."""

    async def ingest(request: Request) -> Response:
        principal = principal_of(request)
        media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        work: Coroutine[Any, Any, Ingested]
        if media_type == "multipart/form-data":
            fields = await _read_upload(request, knowledge.max_upload_bytes, knowledge.too_large)
            work = knowledge.ingest_upload(principal, **fields)
        else:
            body = await read_json(request)
            if isinstance(body, dict) and "url" in body:
                fetch = parse(UrlDocument, body)
                work = knowledge.add_url(principal, fetch.url, fetch.title, fetch.source)
            else:
                spec = parse(TextDocument, body)
                work = knowledge.add_text(principal, spec.title, spec.text, spec.source, spec.content_type)
        done = await _until_disconnected(request, work)
        if done is None:
            return Response(status_code=499)  # nobody reads it; the access log shows what happened
        if done.task is not None:
            return JSONResponse(done.task, status_code=202, headers={"location": f"/api/tasks/{done.task['id']}"})
        return JSONResponse(done.document, status_code=201 if done.created else 200)

    async def list_documents(request: Request) -> Response:
        params = request.query_params
        found = await knowledge.list_documents(
            principal_of(request),
            limit=query_int(params, "limit", 50, 1, MAX_PAGE),
            offset=query_int(params, "offset", 0, 0, MAX_OFFSET),
            source=params.get("source") or None,
        )
        return JSONResponse(found)

    async def get_document(request: Request) -> Response:
        include_text = request.query_params.get("include") == "text"
        document = await knowledge.get_document(principal_of(request), request.path_params["doc_id"], include_text)
        return JSONResponse(document)

    async def delete_document(request: Request) -> Response:
        await knowledge.delete_document(principal_of(request), request.path_params["doc_id"])
        return Response(status_code=204)

    async def search(request: Request) -> Response:
        params = request.query_params
        found = await knowledge.search(
            principal_of(request),
            params.get("q") or "",
            k=query_int(params, "k", 5, 1, MAX_HITS),
            source=params.get("source") or None,
            kind=params.get("kind") or None,
        )
        return JSONResponse(found)

    return [
        Route("/api/kb/documents", ingest, methods=["POST"]),
        Route("/api/kb/documents", list_documents, methods=["GET"]),
        Route("/api/kb/documents/{doc_id}", get_document, methods=["GET"]),
        Route("/api/kb/documents/{doc_id}", delete_document, methods=["DELETE"]),
        Route("/api/kb/search", search, methods=["GET"]),
    ]


async def _until_disconnected(request: Request, work: Coroutine[Any, Any, Ingested]) -> Ingested | None:
    """``work``'s result, or None when the client goes away first: then the work is cancelled (and cleans up)."""
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
                return None
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
        # One byte past the limit is enough for the service to refuse it, without reading the rest.
        data = await upload.read(max_upload_bytes + 1)
        fields: dict[str, Any] = {"data": data, "filename": upload.filename, "content_type": upload.content_type}
        for name in ("source", "title", "content_type"):
            value = form.get(name)
            if isinstance(value, str) and value.strip():
                fields[name] = value.strip()
        return fields
    finally:
        await form.close()
