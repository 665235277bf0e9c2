"""Test-case operations for every interface: list, read, review (one case or a task's cases at once), export.

Any key of a project reads its cases; reviewing needs a member or admin key.
Another project's case or task answers 404, exactly like a missing one.
Accepted cases become examples in the project's knowledge base, so later
generations retrieve them; a case rejected after acceptance is removed again.
Acceptance per prompt version feeds ``/api/prompts/{name}/stats``.
"""

from __future__ import annotations

import logging
from typing import Any, NamedTuple

from core.errors import APIError, InvalidRequest
from core.identity.principal import Principal
from core.identity.projects import Conflict
from core.validation import check_int, check_text, parse

from ..kb import KnowledgeBase
from ..tasks.store import TaskStore
from .coverage import coverage
from .dedupe import case_text
from .export import EXPORTERS, exporter
from .export_base import LANGS, LAYOUTS, ExportDocument, Lang, Layout, text
from .metrics import GenerationMetrics
from .points import detect_language
from .review import CASE_FIELDS, MAX_BULK, CaseChanges, Decision, ReviewBody, merged_edit, plan_bulk
from .schemas import CaseDraft, RequirementPoint, TestCase
from .store import REVIEW_STATUSES, TestCaseStore

log = logging.getLogger("aitp.agents.testcases.service")

KIND = "testcase.generate"
REVIEWER = "it can read test cases but not review them"
MAX_PAGE = 500
MAX_OFFSET = 10**9
# Export filters: one review status, or "all"; by default every case but the rejected ones.
EXPORT_STATUSES = (*REVIEW_STATUSES, "all")

__all__ = ["MAX_BULK", "CaseChanges", "ExportFile", "ReviewBody", "TestCaseService"]


class ExportFile(NamedTuple):
    data: bytes
    media_type: str
    filename: str
    cases: int = 0  # how many cases the file holds


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
        edits = merged_edit(current, body.changes, "changes") if body.changes is not None else None
        decision = Decision(current, body.action, edits)
        return (await self._store_reviews(principal, [decision], body.note))[0]

    async def review_many(
        self,
        principal: Principal,
        task_id: str,
        accepted: list[str],
        rejected: list[str],
        edits: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Review a generation task's cases in one call: ``{task_id, accepted, rejected, edited, pending}``.

        Atomic: every id and edit is checked first (a 404 naming unknown ids; a
        400 listing each problem with its case id and field, in ``errors``), then
        all decisions are stored in one transaction, so a batch with a bad edit
        anywhere changes nothing.
        """
        principal.require_role("member", REVIEWER)
        await self._generation_task(principal, task_id)
        current = {case["id"]: case for case in await self._cases.for_task(principal.scope(), task_id)}
        decisions = plan_bulk(task_id, current, accepted, rejected, edits or {})
        await self._store_reviews(principal, decisions, None)
        done: dict[str, list[str]] = {"accepted": [], "rejected": [], "edited": []}
        for decision in decisions:
            done[{"accept": "accepted", "reject": "rejected", "edit": "edited"}[decision.action]].append(
                decision.case["id"]
            )
        pending, _ = await self._cases.find(principal.scope(), task_id=task_id, status="pending", limit=1, offset=0)
        return {"task_id": task_id, **done, "pending": pending}

    async def export(
        self,
        principal: Principal,
        task_id: str,
        fmt: str = "json",
        status: str | None = None,
        layout: str | None = None,
        lang: str | None = None,
    ) -> ExportFile:
        """A succeeded generation task's cases as a file in ``fmt`` (see :mod:`agents.testcases.export`).

        ``status`` keeps the cases of one review status ("all": every case); by default rejected cases
        are left out, since an import file is for cases to use. ``layout`` is ``case`` or ``step`` for the
        generic tables; ``lang`` (``zh``/``en``) picks the words of headers and labels, by default the
        language the task generated in.
        """
        check_text(task_id, "task_id")
        found = exporter(fmt) if isinstance(fmt, str) else None
        if found is None:
            raise InvalidRequest(f"'format' must be one of {', '.join(EXPORTERS)}; got {fmt!r:.80}", param="format")
        shape = _layout(found.name, found.layouts, layout)
        words = _choice(lang, LANGS, "lang")
        keep = _choice(status, EXPORT_STATUSES, "status")
        task = await self._tasks.get(task_id, principal.scope())
        _check_generation(task)
        if task["status"] != "succeeded":
            raise Conflict(
                f"task {task_id} is {task['status']}; its test cases can be exported once it has succeeded",
                code="task_not_finished",
            )
        items = await self._cases.for_task(principal.scope(), task_id)
        if keep is None:
            items = [i for i in items if i["review_status"] != "rejected"]
        elif keep != "all":
            items = [i for i in items if i["review_status"] == keep]
        models = [TestCase.model_validate({k: v for k, v in i.items() if k in TestCase.model_fields}) for i in items]
        result = task["result"] or {}
        points = [RequirementPoint.model_validate(p) for p in result.get("requirement_points", [])]
        language = words or _task_language(task, models)
        title = _title(task, language)
        document = ExportDocument(models, coverage(points, models), title, language, shape)
        prefix = "测试用例" if language == "zh" else "testcases"
        name = f"{prefix}-{task_id}.{found.resource_suffix}"
        return ExportFile(found.write(document), found.media_type, name, len(models))

    async def _generation_task(self, principal: Principal, task_id: str) -> None:
        _check_generation(await self._tasks.get(check_text(task_id, "task_id"), principal.scope()))

    async def _store_reviews(
        self, principal: Principal, decisions: list[Decision], note: str | None
    ) -> list[dict[str, Any]]:
        """Store the decisions in one transaction, then count them and update the knowledge-base examples."""
        updated = await self._cases.review_many(
            principal.scope(),
            [(d.case, d.status, d.edits, note) for d in decisions],
            reviewer=principal.key_id,
        )
        for decision, case in zip(decisions, updated, strict=True):
            self._metrics.reviews.labels(decision.action).inc()
            await self._sync_example(case)
        return updated

    async def _sync_example(self, case: dict[str, Any]) -> None:
        """Accepted cases teach later generations; a rejected one must not."""
        try:
            if case["review_status"] == "accepted":
                draft = CaseDraft.model_validate({k: case[k] for k in CASE_FIELDS})
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


def _choice(value: str | None, allowed: tuple[str, ...], param: str) -> Any:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or value.lower() not in allowed:
        raise InvalidRequest(f"'{param}' must be one of {', '.join(allowed)}; got {value!r:.80}", param=param)
    return value.lower()


def _layout(name: str, layouts: tuple[Layout, ...], asked: str | None) -> Layout:
    shape: Layout | None = _choice(asked, LAYOUTS, "layout")
    if shape is None:
        return layouts[0]
    if shape not in layouts:
        generic = ", ".join(n for n, e in EXPORTERS.items() if len(e.layouts) > 1)
        raise InvalidRequest(
            f"format '{name}' has one layout, '{layouts[0]}' (its importer reads nothing else); "
            f"'layout' chooses between case and step for {generic}",
            param="layout",
        )
    return shape


def _task_language(task: Any, cases: list[TestCase]) -> Lang:
    """The language the task generated in (its result, then its input), else the cases' own."""
    requirement = (task["result"] or {}).get("requirement") or {}
    for value in (requirement.get("language"), (task["input"] or {}).get("language")):
        if value in LANGS:
            return value  # type: ignore[no-any-return]
    return detect_language(" ".join(case.title for case in cases[:20]))


def _title(task: Any, lang: Lang) -> str:
    """The requirement's first line (its heading), else "Test cases <task id>"."""
    requirement = (task["input"] or {}).get("requirement")
    if isinstance(requirement, str):
        for line in requirement.splitlines():
            heading = line.strip().lstrip("#").strip()
            if heading:
                return heading[:80]
    return f"{text('sheet_cases', lang)} {task['id']}"
