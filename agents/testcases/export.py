"""Test-case exports by format name: the registry every interface (REST, MCP, CLI) reads.

Formats: ``json``, ``csv``, ``xlsx`` and ``md`` (generic; headers in Chinese
or English), ``zentao`` (ZenTao import CSV), ``testlink`` (TestLink XML),
``xray`` (Xray Test Case Importer CSV) and ``xmind`` (XMind mind map). Each
module names the import documentation it follows.

To add a format, write ``write_x(document: ExportDocument) -> bytes`` in a
module beside this one and add an :class:`Exporter` to :data:`EXPORTERS`.
``layouts`` lists the layouts the format honours: the generic tables take
one row per case or per step; a tool's format has the one layout its
importer reads, and asking it for another is refused rather than ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from .export_base import CASE_COLUMNS, ExportDocument, Lang, Layout, escape_formula, table_rows
from .export_tables import write_csv, write_json, write_markdown, write_xlsx
from .export_testlink import write_testlink
from .export_xmind import write_xmind
from .export_xray import write_xray
from .export_zentao import write_zentao
from .schemas import Coverage, TestCase

COLUMNS = CASE_COLUMNS  # the generic table's column keys, in order
# The names of EXPORTERS, for typed interfaces (MCP tool arguments); a test keeps the two equal.
FormatName = Literal["json", "csv", "xlsx", "md", "zentao", "testlink", "xray", "xmind"]


@dataclass(frozen=True, slots=True)
class Exporter:
    name: str
    extension: str
    media_type: str
    binary: bool  # served as a blob, never as text
    layouts: tuple[Layout, ...]
    description: str
    write: Callable[[ExportDocument], bytes]

    @property
    def resource_suffix(self) -> str:
        """``csv`` for the generic CSV, ``zentao.csv`` for a tool's CSV: the end of file and resource names."""
        return self.extension if self.name == self.extension else f"{self.name}.{self.extension}"


_CSV = "text/csv; charset=utf-8"
EXPORTERS: Mapping[str, Exporter] = MappingProxyType(
    {
        e.name: e
        for e in (
            Exporter("json", "json", "application/json", False, ("case",), "cases and coverage as JSON", write_json),
            Exporter("csv", "csv", _CSV, False, ("case", "step"), "spreadsheet CSV (UTF-8 with BOM)", write_csv),
            Exporter(
                "xlsx",
                "xlsx",
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                True,
                ("case", "step"),
                "Excel workbook: cases and coverage sheets",
                write_xlsx,
            ),
            Exporter("md", "md", "text/markdown; charset=utf-8", False, ("case", "step"), "Markdown", write_markdown),
            Exporter("zentao", "csv", _CSV, False, ("case",), "ZenTao (禅道) test-case import CSV", write_zentao),
            Exporter(
                "testlink", "xml", "application/xml; charset=utf-8", False, ("step",), "TestLink XML", write_testlink
            ),
            Exporter("xray", "csv", _CSV, False, ("step",), "Xray Test Case Importer CSV", write_xray),
            Exporter("xmind", "xmind", "application/vnd.xmind.workbook", True, ("step",), "XMind map", write_xmind),
        )
    }
)
ALIASES: Mapping[str, str] = MappingProxyType({"markdown": "md", "excel": "xlsx"})


def exporter(name: str) -> Exporter | None:
    """The exporter called ``name`` (case-insensitive, aliases allowed), or None."""
    key = name.strip().lower()
    return EXPORTERS.get(ALIASES.get(key, key))


# The generic formats as plain functions, for callers holding cases rather than a task.
def export_json(cases: Sequence[TestCase], coverage: Coverage | None, lang: Lang = "en") -> bytes:
    return write_json(ExportDocument(cases, coverage, "", lang))


def export_csv(cases: Sequence[TestCase], lang: Lang = "en", layout: Layout = "case") -> bytes:
    return write_csv(ExportDocument(cases, None, "", lang, layout))


def export_xlsx(
    cases: Sequence[TestCase], coverage: Coverage | None, lang: Lang = "en", layout: Layout = "case"
) -> bytes:
    return write_xlsx(ExportDocument(cases, coverage, "", lang, layout))


def export_markdown(
    cases: Sequence[TestCase],
    coverage: Coverage | None,
    title: str = "Test cases",
    lang: Lang = "en",
    layout: Layout = "case",
) -> bytes:
    return write_markdown(ExportDocument(cases, coverage, title, lang, layout))


def row(case: TestCase, lang: Lang = "en") -> list[str]:
    """The generic table's cells of one case, in :data:`COLUMNS` order (not yet escaped)."""
    return table_rows(ExportDocument([case], None, "", lang))[1][0]


__all__ = [
    "ALIASES",
    "COLUMNS",
    "EXPORTERS",
    "ExportDocument",
    "Exporter",
    "FormatName",
    "escape_formula",
    "export_csv",
    "export_json",
    "export_markdown",
    "export_xlsx",
    "exporter",
    "row",
]
