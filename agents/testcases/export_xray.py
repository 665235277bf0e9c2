"""Xray (Jira) Test Case Importer CSV: one row per step, the rows of a test sharing its ``Issue ID``.

What this follows: the CSV files and the importer configuration Xray's own
team publishes for the Test Case Importer (github.com/Xray-App/xray-code-snippets,
``use_cases/import_from_testlink/cloud/…``): header ``Issue ID, Test Type,
Test Summary, Test Priority, Action, Data, Result, …``; ``Issue ID`` groups
the step rows of one test and is only an identifier inside the file; the
test's fields are on its first row and each further row adds a step
(Action / Data / Result, mapped to ``__xray_step_action`` / ``_data`` /
``_result``); ``Test Type`` is ``Manual``; multi-value fields use ``;``
(``config.list.delimiter``). ``Labels`` maps to Jira's labels, ``Test Repo``
to the test repository folder, ``Description`` to the issue description.

The column names stay English whatever the language (the importer maps them
once in a saved configuration); the cells keep the cases' own language.
Labels say ``rule-based-draft``, ``model-draft`` or ``reviewed`` (Jira labels
hold no spaces). Priorities are Jira's default names. UTF-8 without a BOM,
so that the first column is read as ``Issue ID``.
"""

from __future__ import annotations

from .export_base import ExportDocument, marking
from .export_tables import csv_bytes
from .schemas import Priority, TestCase

COLUMNS = (
    "Issue ID",
    "Test Type",
    "Test Summary",
    "Test Priority",
    "Action",
    "Data",
    "Result",
    "Labels",
    "Description",
    "Test Repo",
)
_PRIORITY: dict[Priority, str] = {"P0": "Highest", "P1": "High", "P2": "Medium", "P3": "Low"}


def write_xray(document: ExportDocument) -> bytes:
    rows: list[list[str]] = []
    for number, case in enumerate(document.cases, start=1):
        for index, step in enumerate(case.steps):
            first = index == 0
            rows.append(
                [
                    str(number),
                    "Manual",
                    case.title if first else "",
                    _PRIORITY[case.priority] if first else "",
                    step.action,
                    step.data,
                    step.expected,
                    ";".join(_labels(case)) if first else "",
                    _description(document, case) if first else "",
                    _folder(case.module) if first else "",
                ]
            )
    return csv_bytes(COLUMNS, rows, bom=False)


def _labels(case: TestCase) -> list[str]:
    if case.review_status == "accepted":
        state = "reviewed"
    elif case.review_status == "rejected":
        state = "rejected"
    else:
        state = "rule-based-draft" if case.source == "heuristic" else "model-draft"
    return ["aitp", state, case.type, *case.covers]


def _description(document: ExportDocument, case: TestCase) -> str:
    t = document.t
    lines = [marking(case, document.lang), f"aitp {t('id')}: {case.id} · {t('covers')}: {', '.join(case.covers)}"]
    if case.preconditions:
        lines += ["", f"{t('preconditions')}:", *(f"- {p}" for p in case.preconditions)]
    return "\n".join(lines)


def _folder(module: str) -> str:
    # "/" separates folders in a repository path; a module name is one folder.
    return module.replace("/", "-").strip()
