"""Knowledge from a URL, over MCP and REST, through the one outbound-URL policy."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.conftest import Server
from tests.mcp_server.test_http import connect, mcp_server, structured, tool_error  # noqa: F401

PRD = "# 购物车需求\n\n购物车最多容纳 99 件商品，超过 99 件时提示“购物车已满”。\n".encode()


class _Pages(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/prd.md":
            self.send_response(200)
            self.send_header("content-type", "text/markdown; charset=utf-8")
            self.send_header("content-length", str(len(PRD)))
            self.end_headers()
            self.wfile.write(PRD)
        elif self.path == "/to-metadata":
            self.send_response(302)
            self.send_header("location", "http://169.254.169.254/latest/meta-data/")
            self.end_headers()
        else:
            self.send_response(404)
            self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def pages() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Pages)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


async def test_a_document_is_fetched_and_searchable(mcp_server: Server, pages: str) -> None:  # noqa: F811
    key = mcp_server.new_key(project="kb-url")
    async with connect(mcp_server, key) as client:
        document = structured(await client.call_tool("add_knowledge", {"title": "购物车", "url": f"{pages}/prd.md"}))
        assert document["source"] == f"{pages}/prd.md" and document["chunks"] >= 1
        found = structured(await client.call_tool("search_knowledge", {"query": "购物车最多多少件"}))
        assert any("99" in hit["text"] for hit in found["items"]), found


async def test_refusals_name_the_cause(mcp_server: Server, pages: str) -> None:  # noqa: F811
    key = mcp_server.new_key(project="kb-url-refused")
    async with connect(mcp_server, key) as client:
        metadata = tool_error(await client.call_tool("add_knowledge", {"title": "x", "url": f"{pages}/to-metadata"}))
        assert "metadata" in metadata, metadata
        off_list = tool_error(await client.call_tool("add_knowledge", {"title": "x", "url": "https://example.org/a"}))
        assert "outbound.allowed_hosts" in off_list, off_list
        scheme = tool_error(await client.call_tool("add_knowledge", {"title": "x", "url": "file:///etc/passwd"}))
        assert "scheme" in scheme, scheme
        both = tool_error(await client.call_tool("add_knowledge", {"title": "x", "text": "t", "url": f"{pages}/p"}))
        assert "either" in both, both
        missing = tool_error(await client.call_tool("add_knowledge", {"title": "x", "url": f"{pages}/missing"}))
        assert "404" in missing, missing
    # REST takes the same JSON form and gives the same refusal, with the policy's code.
    refused = mcp_server.api("POST", "/api/kb/documents", key=key, json={"url": f"{pages}/to-metadata", "title": "x"})
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["code"] == "url_address_refused"
    assert refused.json()["error"]["param"] == "url"
    listed = mcp_server.api("GET", "/api/kb/documents", key=key).json()
    assert listed["total"] == 0, "a refused fetch stores nothing"
