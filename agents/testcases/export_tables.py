"""The generic formats: JSON, CSV, XLSX and Markdown, with headers in the document's language.

CSV and XLSX hold one row per case (``layout=case``: numbered steps in one
cell, numbered expected results in another) or one row per step
(``layout=step``). Each expected result appears once. Cells a spreadsheet
would run as a formula get a leading apostrophe (OWASP, CSV injection).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence

from .export_base import (
    ExportDocument,
    action_text,
    case_values,
    escape_formula,
    marking,
    summary_counts,
    table_rows,
    xml_safe,
)
from .schemas import TestCase

_CASE_WIDTHS = (14, 40, 14, 9, 10, 36, 50, 48, 12, 11, 12, 22, 20)
_STEP_WIDTHS = (14, 40, 14, 9, 10, 30, 8, 44, 20, 44, 12, 11, 12, 22, 20)


def write_json(document: ExportDocument) -> bytes:
    """``{cases, coverage}``; each case carries its ``marking`` (draft or reviewed) in the document's language."""
    cases = [{**case.model_dump(mode="json"), "marking": marking(case, document.lang)} for case in document.cases]
    coverage = document.coverage.model_dump(mode="json") if document.coverage is not None else None
    return json.dumps({"cases": cases, "coverage": coverage}, ensure_ascii=False, indent=2).encode("utf-8")


def write_csv(document: ExportDocument) -> bytes:
    """UTF-8 with a BOM, so that Excel reads the Chinese text; CRLF line ends."""
    header, rows = table_rows(document)
    return csv_bytes(header, rows, bom=True)


def csv_bytes(header: Sequence[str], rows: Sequence[Sequence[str]], *, bom: bool) -> bytes:
    """A CSV file of ``rows`` under ``header``, every cell neutralised against formula injection."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([escape_formula(value) for value in row])
    return buffer.getvalue().encode("utf-8-sig" if bom else "utf-8")


def write_xlsx(document: ExportDocument) -> bytes:
    """A cases sheet (bold, frozen, filtered header; wrapped text) and a coverage sheet."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    t = document.t
    header, rows = table_rows(document)
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = t("sheet_cases")
    sheet.append(header)
    for row in rows:
        sheet.append([_cell(value) for value in row])
    widths = _CASE_WIDTHS if document.layout == "case" else _STEP_WIDTHS
    for index, width in enumerate(widths, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = width
    if rows:
        sheet.auto_filter.ref = sheet.dimensions

    cover = book.create_sheet(t("sheet_coverage"))
    cover.append([t("point"), t("requirement"), t("covered_by"), t("covered")])
    coverage = document.coverage
    for point in coverage.points if coverage is not None else []:
        cover.append(
            [_cell(point.id), _cell(point.text), _cell(", ".join(point.cases)), t("yes" if point.cases else "no")]
        )
    if coverage is not None:
        cover.append([])
        cover.append([t("ratio"), coverage.ratio])
        cover.cell(cover.max_row, 2).number_format = "0.0%"
        cover.append([t("uncovered"), _cell(", ".join(coverage.uncovered))])
    for letter, width in zip("ABCD", (12, 60, 40, 10), strict=True):
        cover.column_dimensions[letter].width = width

    wrap = Alignment(wrap_text=True, vertical="top")
    for page in (sheet, cover):
        for cells in page.iter_rows():
            for cell in cells:
                cell.alignment = wrap
        for cell in page[1]:
            cell.font = Font(bold=True)
        page.freeze_panes = "A2"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def write_markdown(document: ExportDocument) -> bytes:
    """A heading per case with a step table (``layout=case``), or one table with a row per step."""
    t = document.t
    cases = document.cases
    drafts, reviewed = summary_counts(cases)
    lines = [f"# {_inline(document.title)}", ""]
    summary = f"{t('cases_count')}: {len(cases)} · {t('drafts_count')}: {drafts} · {t('reviewed_count')}: {reviewed}"
    coverage = document.coverage
    if coverage is not None:
        covered = len(coverage.points) - len(coverage.uncovered)
        summary += f" · {t('ratio')}: {coverage.ratio:.0%} ({covered}/{len(coverage.points)})"
        if coverage.uncovered:
            summary += f" · {t('uncovered')}: {', '.join(coverage.uncovered)}"
    lines += [summary, ""]
    if document.layout == "step":
        lines += _step_table(document)
    else:
        for case in cases:
            lines += _case_section(document, case)
    if coverage is not None:
        lines += [f"## {t('ratio')}", "", f"| {t('point')} | {t('requirement')} | {t('covered_by')} |", "|---|---|---|"]
        for point in coverage.points:
            cases_cell = ", ".join(point.cases) if point.cases else f"**{t('uncovered')}**"
            lines.append(f"| {point.id} | {_md_cell(point.text)} | {_md_cell(cases_cell)} |")
        lines.append("")
    return "\n".join(lines).encode("utf-8")


def _case_section(document: ExportDocument, case: TestCase) -> list[str]:
    t, lang = document.t, document.lang
    values = case_values(case, lang)
    prompt = f" ({values['prompt']})" if values["prompt"] else ""
    lines = [f"## {case.id} {_inline(case.title)}", "", f"> {marking(case, lang)}", ""]
    lines.append(f"- {t('module')}: {_inline(case.module)}")
    kind = f"{t('type')}: {values['type']} · {t('covers')}: {values['covers']}"
    lines.append(f"- {t('priority')}: {case.priority} · {kind}")
    lines.append(f"- {t('source')}: {values['source']}{prompt} · {t('review_status')}: {values['review_status']}")
    lines.append("")
    if case.preconditions:
        lines += [f"**{t('preconditions')}**", ""]
        lines += [f"- {_inline(p)}" for p in case.preconditions]
        lines.append("")
    lines += [f"| # | {t('action')} | {t('data')} | {t('expected')} |", "|---|---|---|---|"]
    for step in case.steps:
        lines.append(f"| {step.step} | {_md_cell(step.action)} | {_md_cell(step.data)} | {_md_cell(step.expected)} |")
    lines.append("")
    return lines


def _step_table(document: ExportDocument) -> list[str]:
    t, lang = document.t, document.lang
    columns = ("id", "title", "step", "action", "expected", "marking")
    lines = ["| " + " | ".join(t(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    for case in document.cases:
        for step in case.steps:
            cells = (case.id, case.title, str(step.step), action_text(step, lang), step.expected, marking(case, lang))
            lines.append("| " + " | ".join(_md_cell(cell) for cell in cells) + " |")
    lines.append("")
    return lines


def _cell(value: str) -> str:
    return escape_formula(xml_safe(value))


def _inline(text: str) -> str:
    return " ".join(text.split())


def _md_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r\n", "<br>").replace("\n", "<br>")
