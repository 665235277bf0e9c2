"""Resources: a task as JSON and its test cases in every export format, read with the caller's key.

``task://{id}/testcases.{suffix}`` for each exporter of :data:`agents.testcases.export.EXPORTERS`
(``testcases.md``, ``testcases.xlsx``, ``testcases.zentao.csv``, ``testcases.testlink.xml`` …), with the
optional query ``?layout=case|step&lang=zh|en&status=…``. Text formats are text resources; XLSX and XMind
are blobs (base64 on the wire).
"""

from __future__ import annotations

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ResourceError

from agents.testcases.export import EXPORTERS, Exporter
from core.errors import APIError

from .caller import Caller
from .platform import Platform


def register(server: MCPServer, platform: Platform, caller: Caller) -> None:
    @server.resource("task://{task_id}", name="task", title="A task", mime_type="application/json")
    async def task_resource(task_id: str, ctx: Context) -> dict[str, object]:
        try:
            return await platform.tasks.get(caller(ctx), task_id)
        except APIError as exc:
            raise ResourceError(exc.message) from None

    def export(found: Exporter) -> None:
        async def read(
            task_id: str, ctx: Context, layout: str | None = None, lang: str | None = None, status: str | None = None
        ) -> str | bytes:
            try:
                exported = await platform.testcases.export(caller(ctx), task_id, found.name, status, layout, lang)
            except APIError as exc:
                raise ResourceError(exc.message) from None
            return exported.data if found.binary else exported.data.decode("utf-8-sig")

        read.__name__ = f"testcases_{found.name}"
        server.resource(
            f"task://{{task_id}}/testcases.{found.resource_suffix}{{?layout,lang,status}}",
            name=f"testcases-{found.name}",
            title=f"A task's test cases ({found.description})",
            mime_type=found.media_type.split(";")[0],
        )(read)

    for found in EXPORTERS.values():
        export(found)

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
