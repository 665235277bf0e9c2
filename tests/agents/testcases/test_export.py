import csv
import io
import json

import openpyxl

from agents.testcases import (
    GenerationOptions,
    Step,
    TestCase,
    coverage,
    export_csv,
    export_json,
    export_markdown,
    export_xlsx,
    heuristic_cases,
    split_requirement,
)
from agents.testcases.export import COLUMNS
from tests.agents.testcases.requirements import LOGIN_ZH

POINTS = split_requirement(LOGIN_ZH)


def cases() -> list[TestCase]:
    drafts = heuristic_cases(POINTS, GenerationOptions(max_cases=6))
    out = [TestCase.from_draft(d, id=f"tc-{i}", source="heuristic") for i, d in enumerate(drafts, start=1)]
    out[0] = out[0].model_copy(
        update={"title": '=HYPERLINK("http://evil")', "prompt_name": "testcase.generate", "prompt_version": 3}
    )
    out[1] = out[1].model_copy(update={"module": "@SUM(A1)", "title": "-1 元 | 退款"})
    return out


def test_json_keeps_chinese_and_coverage() -> None:
    items = cases()
    document = json.loads(export_json(items, coverage(POINTS, items)).decode("utf-8"))
    assert [c["id"] for c in document["cases"]] == [c.id for c in items]
    assert document["cases"][2]["title"] == items[2].title and "\\u" not in export_json(items, None).decode()
    assert document["coverage"]["points"][0]["text"] == "用户名为 4-20 位字母或数字"
    assert json.loads(export_json([], None)) == {"cases": [], "coverage": None}


def test_csv_has_bom_one_row_per_case_and_escaped_formulas() -> None:
    items = cases()
    data = export_csv(items)
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    assert tuple(rows[0]) == COLUMNS and len(rows) == len(items)
    assert rows[0]["title"] == '\'=HYPERLINK("http://evil")' and rows[0]["prompt"] == "testcase.generate@v3"
    assert rows[1]["module"] == "'@SUM(A1)" and rows[1]["title"] == "'-1 元 | 退款"
    third = items[2]
    assert rows[2]["title"] == third.title and rows[2]["covers"] == ", ".join(third.covers)
    step_lines = rows[2]["steps"].split("\n")
    assert len(step_lines) == len(third.steps)
    assert step_lines[0].startswith(f"1. {third.steps[0].action}") and f"→ {third.steps[0].expected}" in step_lines[0]
    assert rows[2]["expected"].split("\n")[0] == f"1. {third.steps[0].expected}"
    assert rows[2]["source"] == "heuristic" and rows[2]["review_status"] == "pending"


def test_xlsx_sheets_chinese_text_header_and_escaping() -> None:
    items = cases()
    data = export_xlsx(items, coverage(POINTS, items))
    book = openpyxl.load_workbook(io.BytesIO(data))
    assert book.sheetnames == ["Test cases", "Coverage"]
    sheet = book["Test cases"]
    assert [c.value for c in sheet[1]] == list(COLUMNS)
    assert sheet["A1"].font.bold and sheet.freeze_panes == "A2"
    assert sheet["G2"].alignment.wrap_text and sheet.column_dimensions["G"].width >= 40
    assert sheet.max_row == len(items) + 1
    assert sheet["B2"].value == '\'=HYPERLINK("http://evil")' and sheet["B2"].data_type == "s"
    assert sheet["C3"].value == "'@SUM(A1)"
    assert sheet["B4"].value == items[2].title and "\u4e00" <= items[2].title[0] <= "\u9fff"
    cover = book["Coverage"]
    assert [c.value for c in cover[1]] == ["point", "requirement", "cases", "covered"]
    assert cover["A2"].value == "R1" and cover["B2"].value == "用户名为 4-20 位字母或数字"
    ratio_row = next(r for r in cover.iter_rows(values_only=True) if r[0] == "ratio")
    assert ratio_row[1] == coverage(POINTS, items).ratio


def test_xlsx_without_cases_or_coverage() -> None:
    book = openpyxl.load_workbook(io.BytesIO(export_xlsx([], None)))
    assert book["Test cases"].max_row == 1 and book["Coverage"].max_row == 1


def test_markdown_has_headings_steps_tables_and_coverage() -> None:
    items = cases()
    cover = coverage(POINTS, items)
    text = export_markdown(items, cover, title="登录测试用例").decode("utf-8")
    assert text.startswith("# 登录测试用例\n")
    for case in items[2:]:
        assert f"## {case.id} {case.title}" in text
    assert "| # | Action | Data | Expected |" in text
    assert "## tc-2 -1 元 | 退款" in text
    piped = items[2].model_copy(update={"steps": [Step(step=1, action="选择 A|B", data="x\ny", expected="显示 A|B")]})
    table = export_markdown([piped], None).decode("utf-8")
    assert "| 1 | 选择 A\\|B | x<br>y | 显示 A\\|B |" in table  # a pipe or newline cannot break the table
    assert "## Coverage" in text and "| R1 | 用户名为 4-20 位字母或数字 |" in text
    assert f"Coverage: {cover.ratio:.0%}" in text
    assert "(testcase.generate@v3)" in text
