"""Test-case REST API: list, read, review (one case, or a task's cases at once) and export.

Each handler parses the request, calls :class:`TestCaseService` (which the
MCP tools call too) and answers; the rules live in the service.
"""

from __future__ import annotations

import unicodedata
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from core.http import JSONResponse, read_json
from core.identity.middleware import principal_of
from core.validation import parse, query_int

from .service import MAX_BULK, MAX_OFFSET, MAX_PAGE, ReviewBody, TestCaseService


class BulkReview(BaseModel):
    model_config = ConfigDict(extra="forbid")

    accepted: list[str] = Field(default_factory=list, max_length=MAX_BULK, description="case ids to accept")
    rejected: list[str] = Field(default_factory=list, max_length=MAX_BULK, description="case ids to reject")
    # Each edit is checked by the service, so that every bad one is reported with its case id and field.
    edits: dict[str, Any] | None = Field(
        default=None, description="case id -> fields to change (CaseChanges); an edited case is accepted"
    )


def testcase_routes(cases: TestCaseService) -> list[BaseRoute]:
    async def list_cases(request: Request) -> Response:
        params = request.query_params
        found = await cases.list_cases(
            principal_of(request),
            task_id=params.get("task_id") or None,
            status=params.get("status") or None,
            limit=query_int(params, "limit", 50, 1, MAX_PAGE),
            offset=query_int(params, "offset", 0, 0, MAX_OFFSET),
        )
        return JSONResponse(found)

    async def get_case(request: Request) -> Response:
        return JSONResponse(await cases.get_case(principal_of(request), request.path_params["case_id"]))

    async def review(request: Request) -> Response:
        body = parse(ReviewBody, await read_json(request))
        changes = body.changes.model_dump(exclude_none=True, mode="json") if body.changes is not None else None
        reviewed = await cases.review_case(
            principal_of(request), request.path_params["case_id"], body.action, changes, body.note
        )
        return JSONResponse(reviewed)

    async def review_many(request: Request) -> Response:
        body = parse(BulkReview, await read_json(request))
        done = await cases.review_many(
            principal_of(request), request.path_params["task_id"], body.accepted, body.rejected, body.edits
        )
        return JSONResponse(done)

    async def export(request: Request) -> Response:
        params = request.query_params
        exported = await cases.export(
            principal_of(request),
            request.path_params["task_id"],
            params.get("format") or "json",
            status=params.get("status") or None,
            layout=params.get("layout") or None,
            lang=params.get("lang") or None,
        )
        headers = {"content-disposition": attachment(exported.filename)}
        return Response(exported.data, media_type=exported.media_type, headers=headers)

    return [
        Route("/api/testcases", list_cases, methods=["GET"]),
        Route("/api/testcases/{case_id}", get_case, methods=["GET"]),
        Route("/api/testcases/{case_id}/review", review, methods=["POST"]),
        Route("/api/tasks/{task_id}/testcases", export, methods=["GET"]),
        Route("/api/tasks/{task_id}/testcases/review", review_many, methods=["POST"]),
    ]


def attachment(name: str) -> str:
    """``Content-Disposition`` of a download: an ASCII ``filename`` for old clients, the UTF-8 one in ``filename*``."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().replace("\\", "_").replace('"', "_")
    if plain != name:  # words were lost: say what the file is
        plain = "testcases-" + plain.strip("-_ ")
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(name)}"
