"""Knowledge-base operations for every interface: ingest, list, read, delete documents, and search.

Every key acts on its own project; another project's document answers 404,
exactly like a missing one. Any key may list and search; ingesting and
deleting need a member or admin key.

An ingest answers with a new document, or the existing one when the project
already holds the same content. A document of more than
``kb.sync_ingest_max_chunks`` chunks is embedded by a ``kb.ingest`` task
instead: its progress counts the chunks embedded, and its result holds the
document. Every document is parsed and chunked in a memory-bounded child
process, and one past a limit is refused with a 400 naming the limit and its
``kb.*`` setting before anything is embedded.
"""

from __future__ import annotations

import asyncio
import posixpath
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field

from core.errors import InvalidRequest, PayloadTooLarge
from core.identity.principal import Principal
from core.outbound import OutboundPolicy, UrlRefused
from core.validation import check_int, check_text, parse

from .ingest_task import KIND, IngestTaskInput
from .preparation import Prepared
from .store import KnowledgeBase

if TYPE_CHECKING:
    from ..tasks.service import TaskService

WRITER = "it can search and list the knowledge base but not add or delete documents"
MAX_QUERY_CHARS = 2000
MAX_HITS = 50
MAX_PAGE = 500
MAX_OFFSET = 10**9


class TextDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, description="the document itself")
    source: str | None = Field(default=None, max_length=500, description="where it comes from; a new version "
                               "of the same source replaces the old one")  # fmt: skip
    title: str | None = Field(default=None, max_length=500)
    content_type: str | None = Field(
        default=None, max_length=100, description="text/plain (default), text/markdown or text/html"
    )


class UrlDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=2000, description="an http(s) URL on the outbound allowlist")
    source: str | None = Field(default=None, max_length=500, description="default: the URL")
    title: str | None = Field(default=None, max_length=500)


@dataclass(frozen=True, slots=True)
class Ingested:
    """What an ingest did: stored a new document, found the same one, or queued a ``kb.ingest`` task."""

    document: dict[str, Any]  # queued: the id, source, title and size the document will have
    created: bool
    task: dict[str, Any] | None = None

    def view(self) -> dict[str, Any]:
        """The document, with ``created`` and ``task_id`` (set when a task embeds it)."""
        return {**self.document, "created": self.created, "task_id": self.task["id"] if self.task else None}


class KnowledgeService:
    def __init__(
        self,
        kb: KnowledgeBase,
        max_upload_bytes: int,
        tasks: TaskService | None = None,
        outbound: OutboundPolicy | None = None,
        fetch_timeout_s: float = 30.0,
    ) -> None:
        """Without ``tasks`` every ingest is synchronous, whatever its size; without ``outbound`` no URL is fetched."""
        self.kb = kb
        self.max_upload_bytes = max_upload_bytes
        self._tasks = tasks
        self._outbound = outbound
        self._fetch_timeout_s = fetch_timeout_s

    async def ingest_text(
        self,
        principal: Principal,
        title: str | None,
        text: str,
        source: str | None = None,
        content_type: str | None = None,
    ) -> dict[str, Any]:
        """Add a text document (plain, Markdown or HTML); see :meth:`Ingested.view` for the answer."""
        return (await self.add_text(principal, title, text, source, content_type)).view()

    async def add_text(
        self,
        principal: Principal,
        title: str | None,
        text: str,
        source: str | None = None,
        content_type: str | None = None,
    ) -> Ingested:
        principal.require_role("member", WRITER)
        spec = parse(TextDocument, {"text": text, "source": source, "title": title, "content_type": content_type})
        if not spec.text.strip():
            raise InvalidRequest("'text' is empty; send the document's text", param="text")
        size = len(spec.text.encode())
        if size > self.max_upload_bytes:
            raise self.too_large(size)
        return await self._add(
            principal, spec.text, filename=None, content_type=spec.content_type, source=spec.source, title=spec.title
        )

    async def ingest_upload(
        self,
        principal: Principal,
        data: bytes,
        filename: str | None = None,
        content_type: str | None = None,
        source: str | None = None,
        title: str | None = None,
    ) -> Ingested:
        """Add an uploaded file (PDF, DOCX, XLSX, Markdown, HTML or text), detected from its bytes and name."""
        principal.require_role("member", WRITER)
        if len(data) > self.max_upload_bytes:
            raise self.too_large(None)
        if not data:
            raise InvalidRequest("the uploaded file is empty", param="file")
        return await self._add(
            principal, data, filename=filename, content_type=content_type, source=source, title=title
        )

    async def add_url(
        self, principal: Principal, url: str, title: str | None = None, source: str | None = None
    ) -> Ingested:
        """Fetch a document (HTML, PDF, DOCX …) from ``url`` through the outbound policy, then ingest it."""
        principal.require_role("member", WRITER)
        spec = parse(UrlDocument, {"url": url, "title": title, "source": source})
        if self._outbound is None:
            raise InvalidRequest("this server fetches no URLs; upload the document instead", param="url")
        try:
            async with httpx.AsyncClient(timeout=self._fetch_timeout_s, trust_env=False) as client:
                fetched = await self._outbound.fetch(client, spec.url, max_bytes=self.max_upload_bytes)
        except UrlRefused as exc:
            raise InvalidRequest(exc.message, param="url", code=exc.code) from None
        except httpx.HTTPError as exc:
            raise InvalidRequest(
                f"could not fetch {spec.url:.200}: {type(exc).__name__}; check that the server is reachable",
                param="url",
                code="url_fetch_failed",
            ) from None
        if fetched.status_code != 200:
            raise InvalidRequest(
                f"{fetched.url:.200} answered HTTP {fetched.status_code}; give a URL that serves the document",
                param="url",
                code="url_fetch_failed",
            )
        if not fetched.content:
            raise InvalidRequest(f"{fetched.url:.200} sent an empty document", param="url")
        content_type = fetched.headers.get("content-type", "").split(";", 1)[0].strip().lower() or None
        filename = posixpath.basename(urlsplit(fetched.url).path) or None
        return await self._add(
            principal,
            fetched.content,
            filename=filename,
            content_type=content_type,
            source=spec.source or spec.url,
            title=spec.title,
        )

    def too_large(self, size: int | None = None) -> PayloadTooLarge:
        got = f" ({size} bytes)" if size is not None else ""
        return PayloadTooLarge(
            f"the document is larger than the limit of {self.max_upload_bytes} bytes{got}; "
            "split it, or raise kb.max_upload_bytes",
            param="file",
        )

    async def search(
        self,
        principal: Principal,
        query: str,
        k: int = 5,
        source: str | None = None,
        kind: str | None = None,
    ) -> dict[str, Any]:
        """``{items}``: the ``k`` passages nearest in meaning, documents and accepted test cases (``kind``)."""
        query = (query or "").strip()
        if not query:
            raise InvalidRequest("query parameter 'q' is required: the words to search for", param="q")
        if len(query) > MAX_QUERY_CHARS:
            raise InvalidRequest(f"query parameter 'q' is longer than {MAX_QUERY_CHARS} characters", param="q")
        check_int(k, "k", 1, MAX_HITS)
        hits = await self.kb.search(principal.project_id, query, k=k, source=source, kind=kind)
        return {"items": [h.as_dict() for h in hits]}

    async def list_documents(
        self, principal: Principal, limit: int = 50, offset: int = 0, source: str | None = None
    ) -> dict[str, Any]:
        """``{total, items, limit, offset}``, newest first."""
        check_int(limit, "limit", 1, MAX_PAGE)
        check_int(offset, "offset", 0, MAX_OFFSET)
        total, items = await self.kb.list_documents(principal.project_id, limit=limit, offset=offset, source=source)
        return {"total": total, "items": [d.as_dict() for d in items], "limit": limit, "offset": offset}

    async def get_document(self, principal: Principal, doc_id: str, include_text: bool = False) -> dict[str, Any]:
        info = (await self.kb.get_document(principal.project_id, check_text(doc_id, "doc_id"))).as_dict()
        if include_text:
            info["text"] = await self.kb.document_text(principal.project_id, doc_id)
        return info

    async def delete_document(self, principal: Principal, doc_id: str) -> None:
        principal.require_role("member", WRITER)
        await self.kb.delete_document(principal.project_id, check_text(doc_id, "doc_id"))

    async def _add(
        self,
        principal: Principal,
        data: bytes | str,
        *,
        filename: str | None,
        content_type: str | None,
        source: str | None,
        title: str | None,
    ) -> Ingested:
        project = principal.project_id
        prepared = await self.kb.prepare(data, filename=filename, content_type=content_type)
        if self._tasks is not None and len(prepared.chunks) > self.kb.settings.sync_ingest_max_chunks:
            existing = await self.kb.existing(project, prepared)
            if existing is not None:
                return Ingested(existing.as_dict(), created=False)
            return await self._queue(self._tasks, principal, prepared, source, title, filename)
        result = await self.kb.add(project, prepared, source=source, title=title, filename=filename)
        return Ingested(result.document.as_dict(), created=result.created)

    async def _queue(
        self,
        tasks: TaskService,
        principal: Principal,
        prepared: Prepared,
        source: str | None,
        title: str | None,
        filename: str | None,
    ) -> Ingested:
        staged = await self.kb.stage(principal.project_id, prepared, source=source, title=title, filename=filename)
        spec = IngestTaskInput(
            upload_id=staged.id,
            source=staged.source,
            title=staged.title,
            chunks=len(prepared.chunks),
            chars=len(prepared.text),
        )
        try:
            task, _ = await tasks.start(principal, KIND, spec.model_dump(mode="json"))
        except BaseException:
            await asyncio.shield(self.kb.drop_staged(principal.project_id, staged.id))
            raise
        document = {
            "id": staged.id,
            "project_id": principal.project_id,
            "source": staged.source,
            "title": staged.title,
            "content_type": prepared.content_type,
            "chunks": len(prepared.chunks),
            "chars": len(prepared.text),
        }
        return Ingested(document, created=True, task=task)
