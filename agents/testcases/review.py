"""Review decisions, checked before anything is stored: one case, or a task's cases in one atomic batch.

:func:`plan_bulk` turns a bulk review (ids to accept, ids to reject, edits by
id) into :class:`Decision` s, or refuses the whole batch with *every* problem
it finds, each naming its case id and field: ``errors: [{case_id, field,
message}]`` beside the usual message. The store then applies all decisions
in one transaction, so a batch is stored whole or not at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.errors import InvalidRequest, NotFound
from core.validation import Text, check_text, field_name

from .schemas import CaseDraft, CaseType, Priority

MAX_BULK = 1000  # case ids in one bulk review
CASE_FIELDS = ("title", "module", "preconditions", "steps", "priority", "type", "covers")
Action = Literal["accept", "reject", "edit"]


class EditStep(BaseModel):
    """A step of an edited case; steps are numbered by their order, so ``step`` may be left out."""

    model_config = ConfigDict(extra="forbid")

    step: int | None = Field(default=None, ge=1, description="ignored: steps are renumbered 1..n in order")
    action: Annotated[str, Text(5000, 1)]
    data: Annotated[str, Text(5000)] = ""
    expected: Annotated[str, Text(5000, 1)]


class CaseChanges(BaseModel):
    """The fields of a case a reviewer may change; the others stay as they are."""

    model_config = ConfigDict(extra="forbid")

    title: Annotated[str, Text(200, 1)] | None = None  # testcases.title and .module are String(200)
    module: Annotated[str, Text(200, 1)] | None = None
    preconditions: list[Annotated[str, Text(5000, 1)]] | None = Field(default=None, max_length=100)
    steps: list[EditStep] | None = Field(default=None, min_length=1, max_length=100)
    priority: Priority | None = None
    type: CaseType | None = None
    covers: list[str] | None = Field(default=None, min_length=1)


class ReviewBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Action
    changes: CaseChanges | None = Field(default=None, description="for 'edit': the fields to change")
    note: Annotated[str, Text(5000)] | None = None

    @model_validator(mode="after")
    def _edit_needs_changes(self) -> ReviewBody:
        if self.action == "edit" and (self.changes is None or not self.changes.model_dump(exclude_none=True)):
            raise ValueError("action 'edit' needs 'changes' with at least one field")
        if self.action != "edit" and self.changes is not None:
            raise ValueError("'changes' goes with action 'edit' only")
        return self


@dataclass(frozen=True, slots=True)
class Decision:
    case: dict[str, Any]  # the case as stored before the review
    action: Action
    edits: dict[str, Any] | None = None  # validated changed fields, for "edit"

    @property
    def status(self) -> str:
        return "rejected" if self.action == "reject" else "accepted"


@dataclass(frozen=True, slots=True)
class Problem:
    case_id: str
    field: str  # the request field: "rejected", "edits.tc_1.priority", …
    message: str


def plan_bulk(
    task_id: str,
    current: Mapping[str, dict[str, Any]],
    accepted: Sequence[str],
    rejected: Sequence[str],
    edits: Mapping[str, Any],
) -> list[Decision]:
    """Each named case once, in the order given; a 404 naming unknown ids, or a 400 listing every problem."""
    ids = [*accepted, *rejected, *edits]
    if not ids:
        raise InvalidRequest("nothing to review: give case ids in accepted, rejected or edits", param="accepted")
    if len(ids) > MAX_BULK:
        raise InvalidRequest(f"at most {MAX_BULK} cases per call; this one names {len(ids)}", param="accepted")
    for name, values in (("accepted", accepted), ("rejected", rejected), ("edits", list(edits))):
        for value in values:
            check_text(value, name)
    unknown = sorted(set(ids) - set(current))
    if unknown:
        raise NotFound(
            f"not cases of task {task_id}: {', '.join(unknown)}; list them with its test cases; nothing was changed",
            code="testcase_not_found",
            param="accepted",
            extra={"errors": [{"case_id": i, "field": "id", "message": "not a case of this task"} for i in unknown]},
        )
    problems = [
        Problem(i, "rejected", "cannot be rejected and accepted or edited at once")
        for i in dict.fromkeys(rejected)
        if i in set(accepted) or i in edits
    ]
    merged: dict[str, dict[str, Any]] = {}
    for case_id, raw in edits.items():
        found, changed = _check_edit(current[case_id], raw, f"edits.{case_id}", case_id)
        problems += found
        if changed is not None:
            merged[case_id] = changed
    if problems:
        raise _refusal(problems)
    rejecting = set(rejected)
    decisions = []
    for case_id in dict.fromkeys(ids):
        if case_id in merged:
            decisions.append(Decision(current[case_id], "edit", merged[case_id]))
        else:
            decisions.append(Decision(current[case_id], "reject" if case_id in rejecting else "accept"))
    return decisions


def merged_edit(current: dict[str, Any], changes: CaseChanges, where: str) -> dict[str, Any]:
    """The changed fields of one case, the whole edited case checked; a 400 naming the field otherwise."""
    problems, edits = _merge(current, changes, where, current["id"])
    if problems:
        raise _refusal(problems, single=True)
    assert edits is not None
    return edits


def _check_edit(
    current: dict[str, Any], raw: Any, where: str, case_id: str
) -> tuple[list[Problem], dict[str, Any] | None]:
    if not isinstance(raw, dict):
        return [Problem(case_id, where, "must be an object of fields to change")], None
    try:
        changes = CaseChanges.model_validate(raw)
    except ValidationError as exc:
        return _problems(exc, where, case_id), None
    if not changes.model_dump(exclude_none=True):
        return [Problem(case_id, where, "changes nothing; give at least one field")], None
    return _merge(current, changes, where, case_id)


def _merge(
    current: dict[str, Any], changes: CaseChanges, where: str, case_id: str
) -> tuple[list[Problem], dict[str, Any] | None]:
    edits = changes.model_dump(exclude_none=True, mode="json")
    if "steps" in edits:
        edits["steps"] = [{**s, "step": i} for i, s in enumerate(edits["steps"], start=1)]
    candidate = {k: current[k] for k in CASE_FIELDS}
    candidate.update(edits)
    try:
        CaseDraft.model_validate(candidate)
    except ValidationError as exc:
        return [
            Problem(p.case_id, p.field, f"the edited case is invalid: {p.message}")
            for p in _problems(exc, where, case_id)
        ], None
    return [], edits


def _problems(error: ValidationError, where: str, case_id: str) -> list[Problem]:
    return [
        Problem(case_id, f"{where}.{field_name(tuple(item['loc']))}", str(item["msg"]))
        for item in error.errors(include_url=False)
    ]


def _refusal(problems: list[Problem], single: bool = False) -> InvalidRequest:
    detail = "; ".join(f"case {p.case_id}, '{p.field}': {p.message}" for p in problems)
    lead = "" if single else f"{len(problems)} problem{'s' if len(problems) > 1 else ''}, nothing was changed: "
    return InvalidRequest(
        lead + detail,
        param=problems[0].field,
        extra={"errors": [{"case_id": p.case_id, "field": p.field, "message": p.message} for p in problems]},
    )
