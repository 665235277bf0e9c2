"""Knowledge tools: search and add, in the caller's project."""

from __future__ import annotations

from typing import Annotated

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from ..caller import Caller
from ..errors import domain_errors
from ..models import Document, Hit, SearchResult
from ..platform import Platform
from ..sizing import cut, page


def register(server: MCPServer, platform: Platform, caller: Caller, budget_tokens: int) -> None:
    @server.tool(title="Search knowledge")
    @domain_errors
    async def search_knowledge(
        query: Annotated[str, Field(min_length=1, max_length=2000, description="what to look for (any language)")],
        ctx: Context,
        k: Annotated[int, Field(ge=1, le=20, description="how many passages")] = 5,
        source: Annotated[str | None, Field(max_length=500, description="only this document source")] = None,
    ) -> SearchResult:
        """Passages of the project's knowledge base nearest in meaning to the query."""
        found = await platform.knowledge.search(caller(ctx), query, k=k, source=source)
        per_hit = max(budget_tokens // max(k, 1), 200)
        hits = [
            Hit.model_validate({**item, "text": cut(str(item.get("text", "")), per_hit, "search more narrowly")[0]})
            for item in found.get("items", [])
        ]
        shown, _ = page(hits, 0, budget_tokens)
        return SearchResult(query=query, items=shown)

    @server.tool(title="Add knowledge")
    @domain_errors
    async def add_knowledge(
        title: Annotated[str, Field(min_length=1, max_length=500, description="the document's title")],
        ctx: Context,
        text: Annotated[
            str | None, Field(min_length=1, max_length=2_000_000, description="the document's text")
        ] = None,
        url: Annotated[
            str | None,
            Field(min_length=1, max_length=2000, description="or: an http(s) URL to fetch (the server's allowlist)"),
        ] = None,
    ) -> Document:
        """Add a document (a PRD, an API description …) to the project's knowledge base, as text or from a URL."""
        if (text is None) == (url is None):
            raise ToolError("give either 'text' (the document itself) or 'url' (where to fetch it), not both")
        principal = caller(ctx)
        if url is not None:
            return Document.model_validate((await platform.knowledge.add_url(principal, url, title)).view())
        return Document.model_validate(await platform.knowledge.ingest_text(principal, title, text or ""))
