"""Test-case operations for every interface: list, read, review (one case or a task's cases at once), export.

Any key of a project reads its cases; reviewing needs a member or admin key.
Another project's case or task answers 404, exactly like a missing one.
Accepted cases become examples in the project's knowledge base, so later
generations retrieve them; a case rejected after acceptance is removed again.
Acceptance per prompt version feeds ``/api/prompts/{name}/stats``.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.errors import APIError, InvalidRequest, NotFound
from core.identity.principal import Principal
from core.identity.projects import Conflict
from core.validation import Text, check_int, check_text, parse

from ..kb import KnowledgeBase
from ..tasks.store import TaskStore
from .coverage import coverage
from .dedupe import case_text
from .export import export_csv, export_json, export_markdown, export_xlsx
from .metrics import GenerationMetrics
from .schemas import CaseDraft, CaseType, Priority, RequirementPoint, Step, TestCase
from .store import REVIEW_STATUSES, TestCaseStore

log = logging.getLogger("aitp.agents.testcases.service")

KIND = "testcase.generate"
REVIEWER = "it can read test cases but not review them"
MAX_PAGE = 500
MAX_OFFSET = 10**9
MAX_BULK = 1000  # case ids in one review_many call
FORMATS: dict[str, tuple[str, str]] = {
    "json": ("application/json", "json"),
    "csv": ("text/csv; charset=utf-8", "csv"),
    "xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx"),
    "md": ("text/markdown; charset=utf-8", "md"),
    "markdown": ("text/markdown; charset=utf-8", "md"),
}
_CASE_FIELDS = ("title", "module", "preconditions", "steps", "priority", "type", "covers")


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


class TestCaseService:
    __test__ = False  # not a pytest class

    def __init__(self, cases: TestCaseStore, kb: KnowledgeBase, metrics: GenerationMetrics, tasks: TaskStore) -> None:
        self._cases = cases
        self._kb = kb
        self._metrics = metrics
        self._tasks = tasks

    async def list_cases(
        self,
        principal: Principal,
        task_id: str | None = None,
        status: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> dict[str, Any]:
        """``{total, items, limit, offset}``: the project's cases, newest task first, in generation order."""
        if status is not None and status not in REVIEW_STATUSES:
            raise InvalidRequest(
                f"query parameter 'status' must be one of {', '.join(REVIEW_STATUSES)}, got {status!r}",
                param="status",
            )
        if task_id is not None:
            check_text(task_id, "task_id")
        check_int(limit, "limit", 1, MAX_PAGE)
        check_int(offset, "offset", 0, MAX_OFFSET)
        total, items = await self._cases.find(
            principal.scope(), task_id=task_id, status=status, limit=limit, offset=offset
        )
        return {"total": total, "items": items, "limit": limit, "offset": offset}

    async def get_case(self, principal: Principal, case_id: str) -> dict[str, Any]:
        return await self._cases.get(principal.scope(), check_text(case_id, "case_id"))

    async def review_case(
        self,
        principal: Principal,
        case_id: str,
        action: str,
        changes: dict[str, Any] | None = None,
        note: str | None = None,
    ) -> dict[str, Any]:
        """Accept, reject or edit (``changes``; an edited case counts as accepted) one case; the case as stored."""
        principal.require_role("member", REVIEWER)
        current = await self.get_case(principal, case_id)  # 404 before a 400 about the decision
        body = parse(ReviewBody, {"action": action, "changes": changes, "note": note})
        edits = _merged(current, body.changes, "changes") if body.changes is not None else None
        return await self._review(principal, current, body.action, edits, body.note)

    async def review_many(
        self,
        principal: Principal,
        task_id: str,
        accepted: list[str],
        rejected: list[str],
        edits: dict[str, dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Review a generation task's cases in one call: ``{task_id, accepted, rejected, edited, pending}``.

        Every id and edit is checked before any case changes: an unknown id is
        a 404 naming it, an id both accepted and rejected (or edited and
        rejected) or an invalid edit is a 400, and then nothing is stored.
        """
        principal.require_role("member", REVIEWER)
        edits = edits or {}
        await self._generation_task(principal, task_id)
        ids = [*accepted, *rejected, *edits]
        if not ids:
            raise InvalidRequest("nothing to review: give case ids in accepted, rejected or edits", param="accepted")
        if len(ids) > MAX_BULK:
            raise InvalidRequest(f"at most {MAX_BULK} cases per call; this one names {len(ids)}", param="accepted")
        for name, values in (("accepted", accepted), ("rejected", rejected), ("edits", list(edits))):
            for value in values:
                check_text(value, name)
        both = sorted(set(rejected) & (set(accepted) | set(edits)))
        if both:
            raise InvalidRequest(
                f"cases cannot be rejected and accepted or edited at once: {', '.join(both)}", param="rejected"
            )
        current = {case["id"]: case for case in await self._cases.for_task(principal.scope(), task_id)}
        unknown = sorted(set(ids) - set(current))
        if unknown:
            raise NotFound(
                f"not cases of task {task_id}: {', '.join(unknown)}; list them with its test cases",
                code="testcase_not_found",
            )
        merged = {
            case_id: _merged(current[case_id], _changes(raw, case_id), f"edits.{case_id}")
            for case_id, raw in edits.items()
        }
        done: dict[str, list[str]] = {"accepted": [], "rejected": [], "edited": []}
        rejecting = set(rejected)
        for case_id in dict.fromkeys(ids):  # each case once, in the order given
            if case_id in merged:
                await self._review(principal, current[case_id], "edit", merged[case_id], None)
                done["edited"].append(case_id)
            elif case_id in rejecting:
                await self._review(principal, current[case_id], "reject", None, None)
                done["rejected"].append(case_id)
            else:
                await self._review(principal, current[case_id], "accept", None, None)
                done["accepted"].append(case_id)
        pending, _ = await self._cases.find(principal.scope(), task_id=task_id, status="pending", limit=1, offset=0)
        return {"task_id": task_id, **done, "pending": pending}

    async def export(
        self, principal: Principal, task_id: str, fmt: str = "json", status: str | None = None
    ) -> tuple[bytes, str, str]:
        """A succeeded generation task's cases as (data, content type, file name); ``status`` keeps only those."""
        task = await self._tasks.get(check_text(task_id, "task_id"), principal.scope())
        fmt = fmt.lower()
        if fmt not in FORMATS:
            raise InvalidRequest(
                f"query parameter 'format' must be one of json, csv, xlsx, md; got {fmt!r}", param="format"
            )
        _check_generation(task)
        if task["status"] != "succeeded":
            raise Conflict(
                f"task {task_id} is {task['status']}; its test cases can be exported once it has succeeded",
                code="task_not_finished",
            )
        items = await self._cases.for_task(principal.scope(), task_id)
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
        return data, media, f"testcases-{task_id}.{ext}"

    async def _generation_task(self, principal: Principal, task_id: str) -> None:
        _check_generation(await self._tasks.get(check_text(task_id, "task_id"), principal.scope()))

    async def _review(
        self,
        principal: Principal,
        current: dict[str, Any],
        action: str,
        edits: dict[str, Any] | None,
        note: str | None,
    ) -> dict[str, Any]:
        status = "rejected" if action == "reject" else "accepted"
        updated = await self._cases.review(
            principal.scope(), current["id"], status=status, changes=edits, note=note, reviewer=principal.key_id
        )
        self._metrics.reviews.labels(action).inc()
        await self._sync_example(updated)
        return updated

    async def _sync_example(self, case: dict[str, Any]) -> None:
        """Accepted cases teach later generations; a rejected one must not."""
        try:
            if case["review_status"] == "accepted":
                draft = CaseDraft.model_validate({k: case[k] for k in _CASE_FIELDS})
                metadata: dict[str, str | int | float | bool] = {
                    "title": case["title"][:200],
                    "task_id": case["task_id"],
                    "case_id": case["id"],
                    "prompt_version": case["prompt_version"] or 0,
                }
                await self._kb.add_example(case["project_id"], case["id"], case_text(draft), metadata)
            else:
                await self._kb.delete_example(case["project_id"], case["id"])
        except (APIError, OSError, ValueError, RuntimeError) as exc:
            # The review itself is stored; the example index catches up on the next review of the case.
            log.warning("could not update the knowledge-base example for %s: %s", case["id"], exc)


def _check_generation(task: Any) -> None:
    if task["kind"] != KIND:
        raise InvalidRequest(f"task {task['id']} is a {task['kind']} task; only {KIND} has test cases")


def _changes(raw: Any, case_id: str) -> CaseChanges:
    """One case's edit of a bulk review, as the single review checks it; errors name ``edits.<id>.<field>``."""
    try:
        changes = parse(CaseChanges, raw)
    except InvalidRequest as exc:
        where = f"edits.{case_id}" + (f".{exc.param}" if exc.param else "")
        raise InvalidRequest(f"edit of case {case_id}: {exc.message}", param=where) from None
    if not changes.model_dump(exclude_none=True):
        raise InvalidRequest(
            f"the edit of case {case_id} changes nothing; give at least one field", param=f"edits.{case_id}"
        )
    return changes


def _merged(current: dict[str, Any], changes: CaseChanges, where: str) -> dict[str, Any]:
    """The edited case, validated as a whole (400 naming the field when the result is not a valid case)."""
    edits = changes.model_dump(exclude_none=True, mode="json")
    if "steps" in edits:
        edits["steps"] = [{**s, "step": i} for i, s in enumerate(edits["steps"], start=1)]
    merged = {k: current[k] for k in _CASE_FIELDS}
    merged.update(edits)
    try:
        CaseDraft.model_validate(merged)
    except ValidationError as exc:
        item = exc.errors()[0]
        field = f"{where}." + ".".join(str(p) for p in item["loc"])
        raise InvalidRequest(f"the edited case is invalid: '{field}': {item['msg']}", param=field) from None
    return edits
