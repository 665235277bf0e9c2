"""Test-case models and the validator of the LLM's answer.

:class:`GenerationOutput` mirrors the ``response_schema`` of ``prompts/testcase.generate.yaml``;
:func:`validate_output` turns a raw answer into it, or into errors that name their JSON path
so that ``testcase.repair`` can be told exactly what to fix.
"""

from __future__ import annotations

import copy
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from agents.answers import extract_json

CaseType = Literal["functional", "boundary", "negative", "security"]
Priority = Literal["P0", "P1", "P2", "P3"]
Language = Literal["zh", "en"]

CASE_TYPES: tuple[CaseType, ...] = ("functional", "boundary", "negative", "security")
# Shown on every case the rules wrote until a person reviews it: the rules read a requirement, not understand it.
DRAFT_LABELS: dict[str, str] = {"zh": "规则草稿：使用前请评审", "en": "rule-based draft: review before use"}
PRIORITIES: tuple[Priority, ...] = ("P0", "P1", "P2", "P3")


def _point_id(value: Any) -> Any:
    return value.strip().upper() if isinstance(value, str) else value


PointId = Annotated[str, BeforeValidator(_point_id), StringConstraints(pattern=r"^R[0-9]+$")]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Step(_Model):
    step: int = Field(ge=1)
    action: Text
    data: str = ""
    expected: Text


class RequirementPoint(_Model):
    id: PointId
    text: Text


class CaseDraft(_Model):
    """One case as the LLM or the heuristic writes it: an item of the response schema's ``cases``."""

    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    module: Text
    preconditions: list[Text]
    steps: list[Step] = Field(min_length=1)
    priority: Priority
    type: CaseType
    covers: list[PointId] = Field(min_length=1)

    @field_validator("priority", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("type", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("covers")
    @classmethod
    def _unique_covers(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _renumber(self) -> CaseDraft:
        # Models number steps 0.., skip or repeat numbers; the array order is the order to run them in.
        for index, step in enumerate(self.steps, start=1):
            step.step = index
        return self


class GenerationOutput(_Model):
    """The whole answer of ``testcase.generate`` (its ``response_schema``)."""

    requirement_points: list[RequirementPoint] = Field(min_length=1)
    cases: list[CaseDraft] = Field(min_length=1, max_length=100)
    # Required by the schema, but an answer that only forgets it is not worth a repair call.
    open_questions: list[Text] = Field(default_factory=list)


class GenerationOptions(_Model):
    case_types: list[CaseType] = Field(default_factory=lambda: list(CASE_TYPES), min_length=1)
    priorities: list[Priority] = Field(default_factory=lambda: list(PRIORITIES), min_length=1)
    language: Language = "zh"
    max_cases: int = Field(default=20, ge=1, le=100)
    module: str = ""

    @field_validator("case_types", "priorities")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("values must be unique")
        return value


class TestCase(CaseDraft):
    """A case as stored, reviewed and exported."""

    __test__ = False  # not a pytest test class

    id: str
    source: Literal["llm", "heuristic"]
    prompt_name: str | None = None
    prompt_version: int | None = None
    review_status: Literal["pending", "accepted", "rejected"] = "pending"
    task_id: str | None = None

    @property
    def draft(self) -> bool:
        """A rule-based case not reviewed yet: see :data:`DRAFT_LABELS`."""
        return is_draft(self.source, self.review_status)

    @property
    def label(self) -> str | None:
        return draft_label(self.source, self.review_status, self.title)

    @classmethod
    def from_draft(
        cls,
        draft: CaseDraft,
        *,
        id: str,
        source: Literal["llm", "heuristic"],
        prompt_name: str | None = None,
        prompt_version: int | None = None,
        task_id: str | None = None,
    ) -> TestCase:
        return cls(
            **draft.model_dump(),
            id=id,
            source=source,
            prompt_name=prompt_name,
            prompt_version=prompt_version,
            task_id=task_id,
        )


def is_draft(source: str, review_status: str) -> bool:
    """A rule-based case nobody has reviewed yet."""
    return source == "heuristic" and review_status == "pending"


def draft_label(source: str, review_status: str, text: str) -> str | None:
    """The draft label in the language of ``text`` (a case's title), or ``None`` for a model's or a reviewed case."""
    if not is_draft(source, review_status):
        return None
    chinese = any("\u4e00" <= ch <= "\u9fff" for ch in text)
    return DRAFT_LABELS["zh" if chinese else "en"]


class PointCoverage(_Model):
    id: str
    text: str
    cases: list[str]


class Coverage(_Model):
    points: list[PointCoverage]
    uncovered: list[str]
    ratio: float = Field(ge=0, le=1)


def validate_output(raw: str | dict[str, Any]) -> tuple[GenerationOutput | None, list[str]]:
    """Parse an answer of ``testcase.generate``: ``(output, [])`` or ``(None, errors)``.

    Each error starts with the JSON path it is about (``cases[2].steps[0].expected: field required``);
    ``$`` is the whole answer. Markdown fences, reasoning blocks and prose around the JSON are tolerated,
    steps are renumbered 1..n, and a case covering a point the answer does not list is an error.
    """
    if isinstance(raw, str):
        data, error = extract_json(raw)
        if error is not None:
            return None, [error]
    else:
        data = raw
    if not isinstance(data, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(data), "a number")
        return None, [f"$: expected a JSON object with requirement_points, cases and open_questions, got {kind}"]
    data = _renumber_steps(data)
    try:
        output = GenerationOutput.model_validate(data)
    except ValidationError as exc:
        return None, [_format_error(e) for e in exc.errors()]
    errors = semantic_errors(output)
    return (None, errors) if errors else (output, [])


def semantic_errors(output: GenerationOutput) -> list[str]:
    """What the schema cannot say: point ids unique, and every covered id a listed point."""
    errors: list[str] = []
    seen: set[str] = set()
    for index, point in enumerate(output.requirement_points):
        if point.id in seen:
            errors.append(f"requirement_points[{index}].id: duplicate id {point.id!r}; number the points R1..Rn once")
        seen.add(point.id)
    known = ", ".join(p.id for p in output.requirement_points)
    for c_index, case in enumerate(output.cases):
        for p_index, point_id in enumerate(case.covers):
            if point_id not in seen:
                errors.append(
                    f"cases[{c_index}].covers[{p_index}]: {point_id!r} is not one of the requirement_points ({known})"
                )
    return errors


def _renumber_steps(data: dict[str, Any]) -> dict[str, Any]:
    cases = data.get("cases")
    if not isinstance(cases, list):
        return data
    data = copy.deepcopy(data)
    for case in data["cases"]:
        steps = case.get("steps") if isinstance(case, dict) else None
        if isinstance(steps, list):
            for index, step in enumerate(steps, start=1):
                if isinstance(step, dict):
                    step["step"] = index
    return data


def _format_error(error: Any) -> str:
    path = ""
    for part in error["loc"]:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    message = str(error["msg"])
    message = message[:1].lower() + message[1:]
    if error["type"] not in ("missing", "extra_forbidden"):
        shown = repr(error.get("input"))
        message += f" (got {shown[:80]}{'…' if len(shown) > 80 else ''})"
    return f"{path or '$'}: {message}"
