"""Test-case API: list, read, review (accept / reject / edit) and export a generation task's cases.

Accepted cases become examples in the project's knowledge base, so later
generations retrieve them; a case rejected after acceptance is removed again.
Acceptance per prompt version feeds ``/api/prompts/{name}/stats``.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from core.errors import APIError, InvalidRequest
from core.http import JSONResponse, read_json
from core.identity.middleware import principal_of
from core.identity.projects import Conflict
from core.validation import Text, parse, query_int

from ..kb import KnowledgeBase
from ..services import AgentServices
from ..tasks.store import TaskStore
from .coverage import coverage
from .dedupe import case_text
from .export import export_csv, export_json, export_markdown, export_xlsx
from .schemas import CaseDraft, CaseType, Priority, RequirementPoint, Step, TestCase
from .store import REVIEW_STATUSES

log = logging.getLogger("aitp.agents.testcases.routes")

FORMATS: dict[str, tuple[str, str]] = {
    "json": ("application/json", "json"),
    "csv": ("text/csv; charset=utf-8", "csv"),
    "xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx"),
    "md": ("text/markdown; charset=utf-8", "md"),
    "markdown": ("text/markdown; charset=utf-8", "md"),
}


class CaseChanges(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Annotated[str, Text(200, 1)] | None = None  # testcases.title and .module are String(200)
    module: Annotated[str, Text(200, 1)] | None = None
    preconditions: list[str] | None = None
    steps: list[Step] | None = Field(default=None, min_length=1)
    priority: Priority | None = None
    type: CaseType | None = None
    covers: list[str] | None = Field(default=None, min_length=1)


class ReviewBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["accept", "reject", "edit"]
    changes: CaseChanges | None = Field(default=None, description="for 'edit': the fields to change")
    note: Annotated[str, Text(5000)] | None = None

    @model_validator(mode="after")
    def _edit_needs_changes(self) -> ReviewBody:
        if self.action == "edit" and (self.changes is None or not self.changes.model_dump(exclude_none=True)):
            raise ValueError("action 'edit' needs 'changes' with at least one field")
        if self.action != "edit" and self.changes is not None:
            raise ValueError("'changes' goes with action 'edit' only")
        return self


def _merged(current: dict[str, Any], changes: CaseChanges) -> dict[str, Any]:
    """The edited case, validated as a whole (400 naming the field when the result is not a valid case)."""
    edits = changes.model_dump(exclude_none=True, mode="json")
    if "steps" in edits:
        edits["steps"] = [{**s, "step": i} for i, s in enumerate(edits["steps"], start=1)]
    merged = {k: current[k] for k in ("title", "module", "preconditions", "steps", "priority", "type", "covers")}
    merged.update(edits)
    try:
        CaseDraft.model_validate(merged)
    except ValidationError as exc:
        item = exc.errors()[0]
        field = "changes." + ".".join(str(p) for p in item["loc"])
        raise InvalidRequest(f"the edited case is invalid: '{field}': {item['msg']}", param=field) from None
    return edits


def testcase_routes(services: AgentServices, tasks: TaskStore) -> list[BaseRoute]:
    cases, kb, metrics = services.testcases, services.kb, services.metrics

    async def list_cases(request: Request) -> Response:
        principal = principal_of(request)
        params = request.query_params
        status = params.get("status") or None
        if status is not None and status not in REVIEW_STATUSES:
            raise InvalidRequest(
                f"query parameter 'status' must be one of {', '.join(REVIEW_STATUSES)}, got {status!r}",
                param="status",
            )
        limit = query_int(params, "limit", 50, 1, 500)
        offset = query_int(params, "offset", 0, 0, 10**9)
        total, items = await cases.find(
            principal.scope(), task_id=params.get("task_id") or None, status=status, limit=limit, offset=offset
        )
        return JSONResponse({"total": total, "items": items, "limit": limit, "offset": offset})

    async def get_case(request: Request) -> Response:
        principal = principal_of(request)
        return JSONResponse(await cases.get(principal.scope(), request.path_params["case_id"]))

    async def review(request: Request) -> Response:
        principal = principal_of(request)
        principal.require_role("member", "it can read test cases but not review them")
        case_id = request.path_params["case_id"]
        current = await cases.get(principal.scope(), case_id)  # 404 before a 400 about the body
        body = parse(ReviewBody, await read_json(request))
        edits = _merged(current, body.changes) if body.changes is not None else None
        status = "rejected" if body.action == "reject" else "accepted"
        updated = await cases.review(
            principal.scope(), case_id, status=status, changes=edits, note=body.note, reviewer=principal.key_id
        )
        metrics.reviews.labels(body.action).inc()
        await _sync_example(kb, updated)
        return JSONResponse(updated)

    async def export(request: Request) -> Response:
        principal = principal_of(request)
        task_id = request.path_params["task_id"]
        task = await tasks.get(task_id, principal.scope())
        fmt = (request.query_params.get("format") or "json").lower()
        if fmt not in FORMATS:
            raise InvalidRequest(
                f"query parameter 'format' must be one of json, csv, xlsx, md; got {fmt!r}", param="format"
            )
        if task["kind"] != "testcase.generate":
            raise InvalidRequest(f"task {task_id} is a {task['kind']} task; only testcase.generate has test cases")
        if task["status"] != "succeeded":
            raise Conflict(
                f"task {task_id} is {task['status']}; its test cases can be exported once it has succeeded",
                code="task_not_finished",
            )
        status = request.query_params.get("status") or None
        items = await cases.for_task(principal.scope(), task_id)
        if status is not None:
            items = [i for i in items if i["review_status"] == status]
        models = [TestCase.model_validate({k: v for k, v in i.items() if k in TestCase.model_fields}) for i in items]
        points = [RequirementPoint.model_validate(p) for p in (task["result"] or {}).get("requirement_points", [])]
        cover = coverage(points, models)
        media, ext = FORMATS[fmt]
        if ext == "json":
            data = export_json(models, cover)
        elif ext == "csv":
            data = export_csv(models)
        elif ext == "xlsx":
            data = export_xlsx(models, cover)
        else:
            data = export_markdown(models, cover)
        name = f"testcases-{task_id}.{ext}"
        headers = {"content-disposition": f"attachment; filename=\"{name}\"; filename*=UTF-8''{quote(name)}"}
        return Response(data, media_type=media, headers=headers)

    return [
        Route("/api/testcases", list_cases, methods=["GET"]),
        Route("/api/testcases/{case_id}", get_case, methods=["GET"]),
        Route("/api/testcases/{case_id}/review", review, methods=["POST"]),
        Route("/api/tasks/{task_id}/testcases", export, methods=["GET"]),
    ]


async def _sync_example(kb: KnowledgeBase, case: dict[str, Any]) -> None:
    """Accepted cases teach later generations; a rejected one must not."""
    try:
        if case["review_status"] == "accepted":
            draft = CaseDraft.model_validate(
                {k: case[k] for k in ("title", "module", "preconditions", "steps", "priority", "type", "covers")}
            )
            metadata: dict[str, str | int | float | bool] = {
                "title": case["title"][:200],
                "task_id": case["task_id"],
                "case_id": case["id"],
                "prompt_version": case["prompt_version"] or 0,
            }
            await kb.add_example(case["project_id"], case["id"], case_text(draft), metadata)
        else:
            await kb.delete_example(case["project_id"], case["id"])
    except (APIError, OSError, ValueError, RuntimeError) as exc:
        # The review itself is stored; the example index catches up on the next review of the case.
        log.warning("could not update the knowledge-base example for %s: %s", case["id"], exc)
