"""Resources: a task as JSON and its test cases as Markdown, CSV or JSON, read with the caller's key."""

from __future__ import annotations

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ResourceError

from core.errors import APIError

from .caller import Caller
from .platform import Platform

_MIME = {"md": "text/markdown", "csv": "text/csv", "json": "application/json"}


def register(server: MCPServer, platform: Platform, caller: Caller) -> None:
    @server.resource("task://{task_id}", name="task", title="A task", mime_type="application/json")
    async def task_resource(task_id: str, ctx: Context) -> dict[str, object]:
        try:
            return await platform.tasks.get(caller(ctx), task_id)
        except APIError as exc:
            raise ResourceError(exc.message) from None

    def export(fmt: str) -> None:
        async def read(task_id: str, ctx: Context) -> str:
            try:
                data, _, _ = await platform.testcases.export(caller(ctx), task_id, fmt)
            except APIError as exc:
                raise ResourceError(exc.message) from None
            return data.decode("utf-8-sig") if isinstance(data, bytes) else data

        read.__name__ = f"testcases_{fmt}"
        server.resource(
            f"task://{{task_id}}/testcases.{fmt}",
            name=f"testcases-{fmt}",
            title=f"A task's test cases ({fmt})",
            mime_type=_MIME[fmt],
        )(read)

    for fmt in _MIME:
        export(fmt)

    @server.resource("kb://{project}/documents/{doc_id}", name="document", mime_type="application/json")
    async def document_resource(project: str, doc_id: str, ctx: Context) -> dict[str, object]:
        principal = caller(ctx)
        # A key reads its own project's knowledge; another project's document is simply not there.
        if project != principal.project_id:
            raise ResourceError(f"no document {doc_id} in project {project}")
        try:
            return await platform.knowledge.get_document(principal, doc_id, include_text=True)
        except APIError as exc:
            raise ResourceError(exc.message) from None
