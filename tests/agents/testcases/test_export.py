"""The generic exports (JSON, CSV, XLSX, Markdown), parsed back: language, layout, marking, formula safety."""

import csv
import io
import json

import openpyxl
import pytest

from agents.testcases import Step, coverage, export_csv, export_json, export_markdown, export_xlsx
from agents.testcases.export_base import CASE_COLUMNS, STEP_COLUMNS, escape_formula, headers
from tests.agents.testcases.export_cases import POINTS, cases

EN = headers(CASE_COLUMNS, "en")
ZH = headers(CASE_COLUMNS, "zh")


def read_csv(data: bytes) -> list[dict[str, str]]:
    assert data.startswith(b"\xef\xbb\xbf"), "Excel needs the BOM to read UTF-8"
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))


def test_json_keeps_chinese_coverage_and_marks_each_case() -> None:
    items = cases()
    document = json.loads(export_json(items, coverage(POINTS, items), lang="zh").decode("utf-8"))
    assert [c["id"] for c in document["cases"]] == [c.id for c in items]
    assert document["cases"][2]["title"] == items[2].title and "\\u" not in export_json(items, None).decode()
    assert document["coverage"]["points"][0]["text"] == "用户名为 4-20 位字母或数字"
    assert [c["marking"] for c in document["cases"][:4]] == [
        "规则生成的草稿：使用前请评审",
        "已评审",
        "规则生成的草稿：使用前请评审",
        "已驳回",
    ]
    assert json.loads(export_json([], None)) == {"cases": [], "coverage": None}


def test_csv_one_row_per_case_english_headers_no_duplicated_expectations() -> None:
    items = cases()
    rows = read_csv(export_csv(items, lang="en"))
    assert list(rows[0]) == EN and len(rows) == len(items)
    third = items[2]
    row = rows[2]
    assert row["Title"] == third.title and row["Covers"] == ", ".join(third.covers)
    assert row["Steps"].split("\n") == ["1. 输入用户名 (data: -1)", "2. 点击登录 (data: +cmd|' /C calc'!A0)"]
    assert row["Expected results"].split("\n") == ["1. 提示用户名长度不正确", "2. 停留在登录页"]
    # Each expected result is written once: not repeated in the steps cell.
    assert "提示用户名长度不正确" not in row["Steps"]
    assert row["Source"] == "rule-based" and row["Review status"] == "pending"
    assert row["Draft or reviewed"] == "rule-based draft: review before use"
    assert rows[1]["Draft or reviewed"] == "reviewed" and rows[3]["Draft or reviewed"] == "rejected"
    assert rows[3]["Source"] == "model" and rows[0]["Prompt version"] == "testcase.generate@v3"


def test_csv_headers_and_values_in_chinese() -> None:
    rows = read_csv(export_csv(cases(), lang="zh"))
    assert list(rows[0]) == ZH
    assert ZH[:8] == ["用例编号", "用例标题", "所属模块", "优先级", "用例类型", "前置条件", "步骤", "预期结果"]
    assert rows[2]["步骤"].startswith("1. 输入用户名（数据：-1）")
    assert rows[0]["来源"] == "规则生成" and rows[0]["评审状态"] == "待评审"
    assert rows[0]["草稿或已评审"] == "规则生成的草稿：使用前请评审" and rows[1]["草稿或已评审"] == "已评审"
    assert {r["用例类型"] for r in rows} <= {"功能", "边界值", "异常", "安全"}


def test_csv_one_row_per_step() -> None:
    items = cases()
    rows = read_csv(export_csv(items, lang="en", layout="step"))
    assert list(rows[0]) == headers(STEP_COLUMNS, "en")
    assert len(rows) == sum(len(c.steps) for c in items)
    third = [r for r in rows if r["ID"] == items[2].id]
    assert [(r["Step"], r["Action"], r["Test data"], r["Expected results"]) for r in third] == [
        ("1", "输入用户名", "-1", "提示用户名长度不正确"),
        ("2", "点击登录", "'+cmd|' /C calc'!A0", "停留在登录页"),
    ]
    # The case's fields are on every row of it, so that a filter or a sort keeps its steps together.
    assert {r["Title"] for r in third} == {items[2].title}
    assert {r["Draft or reviewed"] for r in third} == {"rule-based draft: review before use"}


def test_formula_cells_are_neutralised_but_signed_numbers_are_kept() -> None:
    rows = read_csv(export_csv(cases(), lang="en"))
    assert rows[0]["Title"] == '\'=HYPERLINK("http://evil")'
    assert rows[1]["Module"] == "'@SUM(A1)" and rows[1]["Title"] == "'-1 元 | 退款"
    assert [escape_formula(v) for v in ("-1", "+86", "-0.5", "10%", "=1+1", "-1+1", "@x", "\tx", "a=b")] == [
        "-1",
        "+86",
        "-0.5",
        "10%",
        "'=1+1",
        "'-1+1",
        "'@x",
        "'\tx",
        "a=b",
    ]


@pytest.mark.parametrize(("lang", "sheets"), [("en", ["Test cases", "Coverage"]), ("zh", ["测试用例", "覆盖率"])])
def test_xlsx_sheets_headers_escaping_in_each_language(lang: str, sheets: list[str]) -> None:
    items = cases()
    data = export_xlsx(items, coverage(POINTS, items), lang=lang)  # type: ignore[arg-type]
    book = openpyxl.load_workbook(io.BytesIO(data))
    assert book.sheetnames == sheets
    sheet = book[sheets[0]]
    assert [c.value for c in sheet[1]] == headers(CASE_COLUMNS, lang)  # type: ignore[arg-type]
    assert sheet["A1"].font.bold and sheet.freeze_panes == "A2"
    assert sheet["G2"].alignment.wrap_text and sheet.column_dimensions["G"].width >= 40
    assert sheet.max_row == len(items) + 1
    assert sheet["B2"].value == '\'=HYPERLINK("http://evil")' and sheet["B2"].data_type == "s"
    assert sheet["C3"].value == "'@SUM(A1)"
    assert sheet["B4"].value == items[2].title
    marking = [row[11] for row in sheet.iter_rows(min_row=2, values_only=True)]
    draft = "rule-based draft: review before use" if lang == "en" else "规则生成的草稿：使用前请评审"
    assert marking[0] == draft and marking[1] == ("reviewed" if lang == "en" else "已评审")
    cover = book[sheets[1]]
    assert cover["A2"].value == "R1" and cover["B2"].value == "用户名为 4-20 位字母或数字"
    ratio_row = next(r for r in cover.iter_rows(values_only=True) if r[0] == ("Coverage" if lang == "en" else "覆盖率"))
    assert ratio_row[1] == coverage(POINTS, items).ratio


def test_xlsx_one_row_per_step() -> None:
    items = cases()
    book = openpyxl.load_workbook(io.BytesIO(export_xlsx(items, None, lang="zh", layout="step")))
    sheet = book["测试用例"]
    assert [c.value for c in sheet[1]] == headers(STEP_COLUMNS, "zh")
    rows = list(sheet.iter_rows(min_row=2, values_only=True))
    assert len(rows) == sum(len(c.steps) for c in items)
    third = [r[6:10] for r in rows if r[0] == "tc-3"]
    assert third == [
        ("1", "输入用户名", "-1", "提示用户名长度不正确"),
        ("2", "点击登录", "'+cmd|' /C calc'!A0", "停留在登录页"),
    ]


def test_xlsx_without_cases_or_coverage() -> None:
    book = openpyxl.load_workbook(io.BytesIO(export_xlsx([], None)))
    assert book["Test cases"].max_row == 1 and book["Coverage"].max_row == 1


def test_markdown_headings_step_tables_marking_and_coverage() -> None:
    items = cases()
    cover = coverage(POINTS, items)
    text = export_markdown(items, cover, title="登录测试用例", lang="zh").decode("utf-8")
    assert text.startswith("# 登录测试用例\n")
    assert f"用例数: {len(items)} · 草稿: {len(items) - 2} · 已评审: 1 · 覆盖率: {cover.ratio:.0%}" in text
    for case in items[2:]:
        assert f"## {case.id} {case.title}" in text
    assert "| # | 操作 | 测试数据 | 预期结果 |" in text
    assert "> 规则生成的草稿：使用前请评审" in text and "> 已评审" in text
    piped = items[2].model_copy(update={"steps": [Step(step=1, action="选择 A|B", data="x\ny", expected="显示 A|B")]})
    table = export_markdown([piped], None).decode("utf-8")
    assert "| 1 | 选择 A\\|B | x<br>y | 显示 A\\|B |" in table  # a pipe or newline cannot break the table
    assert "## 覆盖率" in text and "| R1 | 用户名为 4-20 位字母或数字 |" in text
    assert "(testcase.generate@v3)" in text
    steps = export_markdown(items, None, lang="en", layout="step").decode("utf-8")
    assert "| ID | Title | Step | Action | Expected results | Draft or reviewed |" in steps
    assert "| tc-3 | " in steps and "| 2 | 点击登录 (data: +cmd\\|' /C calc'!A0) | 停留在登录页 |" in steps
