"""What every export format shares: the document an exporter receives, labels in two languages, cell safety.

An exporter is a function ``(ExportDocument) -> bytes`` registered by name in
:mod:`agents.testcases.export`. It receives the cases already filtered and
ordered, the coverage, a title, the language of the words it writes (column
headers, value names, the draft notice) and the layout asked for.

Every format tells a rule-based draft from a reviewed case with :func:`marking`:
a case is a *draft* until a reviewer accepted it, and a draft the rule-based
generator wrote says so ("rule-based draft: review before use"), because its
expectations are derived mechanically from the requirement's wording.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from .schemas import Coverage, Step, TestCase

Lang = Literal["zh", "en"]
Layout = Literal["case", "step"]
LANGS: tuple[Lang, ...] = ("zh", "en")
LAYOUTS: tuple[Layout, ...] = ("case", "step")

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# "-1" or "+86" is read as a number, never run: boundary data keeps its sign instead of gaining an apostrophe.
_PLAIN_NUMBER = re.compile(r"^[+-]?[0-9]+(?:\.[0-9]+)?%?$")
# XML 1.0 and the XLSX cell format refuse C0 control characters other than tab, newline and carriage return.
_ILLEGAL_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


@dataclass(frozen=True, slots=True)
class ExportDocument:
    cases: Sequence[TestCase]
    coverage: Coverage | None
    title: str
    lang: Lang = "en"
    layout: Layout = "case"

    def t(self, key: str) -> str:
        """The word for ``key`` in this document's language."""
        return text(key, self.lang)


# key -> (zh, en). Column headers of the generic table formats come first, then values.
_WORDS: dict[str, tuple[str, str]] = {
    "id": ("用例编号", "ID"),
    "title": ("用例标题", "Title"),
    "module": ("所属模块", "Module"),
    "priority": ("优先级", "Priority"),
    "type": ("用例类型", "Type"),
    "preconditions": ("前置条件", "Preconditions"),
    "steps": ("步骤", "Steps"),
    "expected": ("预期结果", "Expected results"),
    "step": ("步骤编号", "Step"),
    "action": ("操作", "Action"),
    "data": ("测试数据", "Test data"),
    "covers": ("覆盖需求点", "Covers"),
    "source": ("来源", "Source"),
    "review_status": ("评审状态", "Review status"),
    "marking": ("草稿或已评审", "Draft or reviewed"),
    "prompt": ("提示词版本", "Prompt version"),
    # coverage
    "point": ("需求点", "Point"),
    "requirement": ("需求描述", "Requirement"),
    "covered_by": ("覆盖用例", "Cases"),
    "covered": ("已覆盖", "Covered"),
    "ratio": ("覆盖率", "Coverage"),
    "uncovered": ("未覆盖", "Uncovered"),
    "yes": ("是", "yes"),
    "no": ("否", "no"),
    "sheet_cases": ("测试用例", "Test cases"),
    "sheet_coverage": ("覆盖率", "Coverage"),
    "cases_count": ("用例数", "Cases"),
    "drafts_count": ("草稿", "Drafts"),
    "reviewed_count": ("已评审", "Reviewed"),
    # values
    "functional": ("功能", "functional"),
    "boundary": ("边界值", "boundary"),
    "negative": ("异常", "negative"),
    "security": ("安全", "security"),
    "heuristic": ("规则生成", "rule-based"),
    "llm": ("模型生成", "model"),
    "pending": ("待评审", "pending"),
    "accepted": ("已通过", "accepted"),
    "rejected": ("已驳回", "rejected"),
    "rule_draft": ("规则生成的草稿：使用前请评审", "rule-based draft: review before use"),
    "model_draft": ("模型生成的草稿：使用前请评审", "model draft: review before use"),
    "reviewed": ("已评审", "reviewed"),
    "data_note": ("（数据：{}）", " (data: {})"),
}

# The generic table (CSV, XLSX): one row per case, or one row per step with the case's fields on every row
# so that a spreadsheet filter or sort keeps each step with its case. Expected results appear once.
CASE_COLUMNS = (
    "id",
    "title",
    "module",
    "priority",
    "type",
    "preconditions",
    "steps",
    "expected",
    "covers",
    "source",
    "review_status",
    "marking",
    "prompt",
)
STEP_COLUMNS = (
    "id",
    "title",
    "module",
    "priority",
    "type",
    "preconditions",
    "step",
    "action",
    "data",
    "expected",
    "covers",
    "source",
    "review_status",
    "marking",
    "prompt",
)


def text(key: str, lang: Lang) -> str:
    zh, en = _WORDS[key]
    return zh if lang == "zh" else en


def headers(columns: Sequence[str], lang: Lang) -> list[str]:
    return [text(column, lang) for column in columns]


def is_draft(case: TestCase) -> bool:
    """Not accepted by a reviewer yet (a rejected case is not a draft: it is out)."""
    return case.review_status == "pending"


def marking(case: TestCase, lang: Lang) -> str:
    """ "rule-based draft: review before use", "model draft: …", "reviewed" or "rejected"."""
    if case.review_status == "accepted":
        return text("reviewed", lang)
    if case.review_status == "rejected":
        return text("rejected", lang)
    return text("rule_draft" if case.source == "heuristic" else "model_draft", lang)


def action_text(step: Step, lang: Lang) -> str:
    """The step's action with its test data, if any."""
    return step.action + (text("data_note", lang).format(step.data) if step.data else "")


def numbered(lines: Sequence[str]) -> str:
    """``1. first`` / ``2. second``: the numbering ZenTao and spreadsheets read back as steps."""
    return "\n".join(f"{index}. {line}" for index, line in enumerate(lines, start=1))


def prompt_tag(case: TestCase) -> str:
    if not case.prompt_name:
        return ""
    return f"{case.prompt_name}@v{case.prompt_version}" if case.prompt_version is not None else case.prompt_name


def case_values(case: TestCase, lang: Lang) -> dict[str, str]:
    """Every field of the generic table for ``case`` except the per-step ones, as words of ``lang``."""
    return {
        "id": case.id,
        "title": case.title,
        "module": case.module,
        "priority": case.priority,
        "type": text(case.type, lang),
        "preconditions": "\n".join(case.preconditions),
        "steps": numbered([action_text(step, lang) for step in case.steps]),
        "expected": numbered([step.expected for step in case.steps]),
        "covers": ", ".join(case.covers),
        "source": text(case.source, lang),
        "review_status": text(case.review_status, lang),
        "marking": marking(case, lang),
        "prompt": prompt_tag(case),
    }


def table_rows(document: ExportDocument) -> tuple[list[str], list[list[str]]]:
    """Header and rows (not yet escaped) of the generic table in the document's layout."""
    lang = document.lang
    if document.layout == "case":
        return headers(CASE_COLUMNS, lang), [
            [case_values(case, lang)[column] for column in CASE_COLUMNS] for case in document.cases
        ]
    rows: list[list[str]] = []
    for case in document.cases:
        values = case_values(case, lang)
        for step in case.steps:
            values.update(step=str(step.step), action=step.action, data=step.data, expected=step.expected)
            rows.append([values[column] for column in STEP_COLUMNS])
    return headers(STEP_COLUMNS, lang), rows


def escape_formula(value: str) -> str:
    """A leading apostrophe for a cell a spreadsheet would evaluate (``= + - @``, tab, CR: OWASP CSV injection)."""
    if value.startswith(_FORMULA_START) and not _PLAIN_NUMBER.match(value):
        return "'" + value
    return value


def xml_safe(value: str) -> str:
    """``value`` without the control characters XML 1.0 and XLSX cannot hold."""
    return _ILLEGAL_XML.sub("", value)


def summary_counts(cases: Sequence[TestCase]) -> tuple[int, int]:
    """(drafts, reviewed) among ``cases``."""
    drafts = sum(1 for case in cases if is_draft(case))
    reviewed = sum(1 for case in cases if case.review_status == "accepted")
    return drafts, reviewed
