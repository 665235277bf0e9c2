"""Test cases as JSON, CSV, XLSX and Markdown files (bytes, UTF-8, Chinese intact).

CSV and XLSX cells that a spreadsheet would run as a formula (starting with ``= + - @``, tab or
carriage return) get a leading apostrophe, as OWASP advises against CSV injection.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Sequence

from agents.testcases.schemas import Coverage, TestCase

COLUMNS = (
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
    "prompt",
)
_WIDTHS = (14, 40, 14, 9, 12, 36, 60, 48, 12, 11, 14, 24)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_ILLEGAL_XLSX = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def export_json(cases: Sequence[TestCase], coverage: Coverage | None) -> bytes:
    document = {
        "cases": [case.model_dump(mode="json") for case in cases],
        "coverage": coverage.model_dump(mode="json") if coverage is not None else None,
    }
    return json.dumps(document, ensure_ascii=False, indent=2).encode("utf-8")


def export_csv(cases: Sequence[TestCase]) -> bytes:
    """One row per case; UTF-8 with a BOM so that Excel reads the Chinese text."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for case in cases:
        writer.writerow([escape_formula(value) for value in row(case)])
    return buffer.getvalue().encode("utf-8-sig")


def export_xlsx(cases: Sequence[TestCase], coverage: Coverage | None) -> bytes:
    """Sheet "Test cases" (bold, frozen header; wrapped text) and sheet "Coverage"."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Test cases"
    sheet.append(list(COLUMNS))
    for case in cases:
        sheet.append([_xlsx(value) for value in row(case)])
    for index, width in enumerate(_WIDTHS, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = width
    wrap = Alignment(wrap_text=True, vertical="top")
    for cells in sheet.iter_rows():
        for cell in cells:
            cell.alignment = wrap
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    sheet.freeze_panes = "A2"
    if cases:
        sheet.auto_filter.ref = sheet.dimensions

    cover = book.create_sheet("Coverage")
    cover.append(["point", "requirement", "cases", "covered"])
    points = coverage.points if coverage is not None else []
    for point in points:
        cover.append(
            [_xlsx(point.id), _xlsx(point.text), _xlsx(", ".join(point.cases)), "yes" if point.cases else "no"]
        )
    if coverage is not None:
        cover.append([])
        cover.append(["ratio", coverage.ratio])
        cover.cell(cover.max_row, 2).number_format = "0.0%"
        cover.append(["uncovered", _xlsx(", ".join(coverage.uncovered))])
    for letter, width in zip("ABCD", (12, 60, 40, 10), strict=True):
        cover.column_dimensions[letter].width = width
    for cells in cover.iter_rows():
        for cell in cells:
            cell.alignment = wrap
    for cell in cover[1]:
        cell.font = Font(bold=True)
    cover.freeze_panes = "A2"

    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def export_markdown(cases: Sequence[TestCase], coverage: Coverage | None, title: str = "Test cases") -> bytes:
    lines = [f"# {title}", ""]
    summary = f"Cases: {len(cases)}"
    if coverage is not None:
        covered = len(coverage.points) - len(coverage.uncovered)
        summary += f" · Coverage: {coverage.ratio:.0%} ({covered} of {len(coverage.points)} points)"
        if coverage.uncovered:
            summary += f" · Uncovered: {', '.join(coverage.uncovered)}"
    lines += [summary, ""]
    for case in cases:
        lines += [f"## {case.id} {_inline(case.title)}", ""]
        lines.append(f"- Module: {_inline(case.module)}")
        lines.append(f"- Priority: {case.priority} · Type: {case.type} · Covers: {', '.join(case.covers)}")
        lines.append(f"- Source: {case.source}{_prompt_suffix(case)} · Review: {case.review_status}")
        lines.append("")
        if case.preconditions:
            lines += ["**Preconditions**", ""]
            lines += [f"- {_inline(p)}" for p in case.preconditions]
            lines.append("")
        lines += ["| # | Action | Data | Expected |", "|---|---|---|---|"]
        for step in case.steps:
            lines.append(
                f"| {step.step} | {_md_cell(step.action)} | {_md_cell(step.data)} | {_md_cell(step.expected)} |"
            )
        lines.append("")
    if coverage is not None:
        lines += ["## Coverage", "", "| Point | Requirement | Cases |", "|---|---|---|"]
        for point in coverage.points:
            cases_cell = ", ".join(point.cases) if point.cases else "**uncovered**"
            lines.append(f"| {point.id} | {_md_cell(point.text)} | {_md_cell(cases_cell)} |")
        lines.append("")
    return "\n".join(lines).encode("utf-8")


def row(case: TestCase) -> list[str]:
    """The CSV/XLSX cells of a case, in :data:`COLUMNS` order (not yet escaped)."""
    steps = []
    for step in case.steps:
        data = f" [{step.data}]" if step.data else ""
        steps.append(f"{step.step}. {step.action}{data} → {step.expected}")
    return [
        case.id,
        case.title,
        case.module,
        case.priority,
        case.type,
        "\n".join(case.preconditions),
        "\n".join(steps),
        "\n".join(f"{step.step}. {step.expected}" for step in case.steps),
        ", ".join(case.covers),
        case.source,
        case.review_status,
        _prompt(case),
    ]


def escape_formula(value: str) -> str:
    """A leading apostrophe for a cell a spreadsheet would evaluate (OWASP CSV injection)."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def _xlsx(value: str) -> str:
    return escape_formula(_ILLEGAL_XLSX.sub("", value))


def _prompt(case: TestCase) -> str:
    if not case.prompt_name:
        return ""
    return f"{case.prompt_name}@v{case.prompt_version}" if case.prompt_version is not None else case.prompt_name


def _prompt_suffix(case: TestCase) -> str:
    prompt = _prompt(case)
    return f" ({prompt})" if prompt else ""


def _inline(text: str) -> str:
    return " ".join(text.split())


def _md_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r\n", "<br>").replace("\n", "<br>")
