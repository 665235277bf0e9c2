"""Exports for test-management tools, parsed back the way each tool's importer reads them.

ZenTao and Xray CSV with the csv module, TestLink XML with defusedxml against the ``testcases`` structure,
XMind as a ZIP with content.json / metadata.json / manifest.json.
"""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from typing import Any

from defusedxml import ElementTree

from agents.testcases import Step, TestCase, coverage
from agents.testcases.export import EXPORTERS, FormatName, exporter
from agents.testcases.export_base import ExportDocument, Lang, escape_formula
from agents.testcases.export_xray import COLUMNS as XRAY_COLUMNS
from tests.agents.testcases.export_cases import POINTS, cases

ZENTAO_ZH = ["所属模块", "用例标题", "前置条件", "步骤", "预期", "关键词", "优先级", "用例类型", "适用阶段"]
ZENTAO_EN = ["Module", "Title", "precondition", "Step", "Expect", "Keywords", "Priority", "Type", "Stage"]


def write(fmt: str, items: list[TestCase], lang: Lang = "zh", title: str = "登录 PRD") -> bytes:
    found = exporter(fmt)
    assert found is not None
    return found.write(ExportDocument(items, coverage(POINTS, items), title, lang, found.layouts[0]))


def numbered_lines(cell: str) -> list[str]:
    """ZenTao's reading of a steps or expectations cell: one ``n. text`` per line."""
    out: list[str] = []
    for line in cell.split("\n"):
        match = re.match(r"^(\d+)\. (.*)$", line)
        assert match, line
        assert int(match.group(1)) == len(out) + 1
        out.append(match.group(2))
    return out


def test_the_registry_lists_every_format_once() -> None:
    assert set(EXPORTERS) == set(FormatName.__args__)  # type: ignore[attr-defined]
    assert exporter("Markdown") is EXPORTERS["md"] and exporter("pdf") is None
    suffixes = [e.resource_suffix for e in EXPORTERS.values()]
    assert len(set(suffixes)) == len(suffixes), "each format needs a resource name of its own"
    assert EXPORTERS["zentao"].resource_suffix == "zentao.csv" and EXPORTERS["csv"].resource_suffix == "csv"


def test_zentao_csv_has_the_import_columns_and_numbered_steps() -> None:
    items = cases()
    data = write("zentao", items, "zh")
    assert data.startswith(b"\xef\xbb\xbf") and b"\r\n" in data
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0] == ZENTAO_ZH and len(rows) == len(items) + 1
    records = [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]
    for case, record in zip(items, records, strict=True):
        assert numbered_lines(record["预期"]) == [s.expected for s in case.steps]
        assert len(numbered_lines(record["步骤"])) == len(case.steps)
        assert record["优先级"] == str(int(case.priority[1]) + 1)  # P0 -> 1 (ZenTao's highest)
        assert record["用例类型"] == ("安全相关" if case.type == "security" else "功能测试")
        assert record["适用阶段"] == "功能测试阶段"
        assert record["前置条件"] == "\n".join(case.preconditions)
        assert {"aitp", case.id} <= set(record["关键词"].split(", "))
    assert numbered_lines(records[2]["步骤"]) == ["输入用户名（数据：-1）", "点击登录（数据：+cmd|' /C calc'!A0）"]
    assert "规则生成的草稿：使用前请评审" in records[0]["关键词"] and "已评审" in records[1]["关键词"]
    assert records[0]["用例标题"] == '\'=HYPERLINK("http://evil")' and records[1]["所属模块"] == "'@SUM(A1)"
    english = list(csv.reader(io.StringIO(write("zentao", items, "en").decode("utf-8-sig"))))
    assert english[0] == ZENTAO_EN and english[1][7] in {"Feature", "Security"} and english[1][8] == "Feature testing"
    assert "rule-based draft: review before use" in english[1][5]


def test_testlink_xml_has_the_testcases_structure() -> None:
    items = cases()
    items[4] = items[4].model_copy(
        update={
            "title": "长标题" * 40,
            "steps": [Step(step=1, action="输入 <script> & 密码<8位\x01", data="a&b", expected='提示 "错误"')],
        }
    )
    data = write("testlink", items, "en")
    assert data.startswith(b"<?xml version='1.0' encoding='utf-8'?>")
    root = ElementTree.fromstring(data)
    assert root.tag == "testcases"
    found = root.findall("testcase")
    assert len(found) == len(items)
    for case, node in zip(items, found, strict=True):
        children = [child.tag for child in node]
        assert children == [
            "summary",
            "preconditions",
            "execution_type",
            "importance",
            "status",
            "steps",
            "keywords",
        ]
        assert node.findtext("execution_type") == "1"
        assert node.findtext("importance") == {"P0": "3", "P1": "3", "P2": "2", "P3": "1"}[case.priority]
        assert node.findtext("status") == {"pending": "1", "accepted": "7", "rejected": "5"}[case.review_status]
        steps = node.findall("steps/step")
        assert [s.findtext("step_number") for s in steps] == [str(s.step) for s in case.steps]
        assert [s.findtext("expectedresults") for s in steps][:1] != [""]
        assert all(s.findtext("execution_type") == "1" for s in steps)
        assert "aitp" in [k.get("name") for k in node.findall("keywords/keyword")]
        assert case.id in (node.findtext("summary") or "")
    assert found[0].get("name") == '=HYPERLINK("http://evil")'  # XML has no formulas: the title is kept
    assert found[0].findtext("summary", "").startswith("<p>rule-based draft: review before use</p>")
    assert found[1].findtext("summary", "").startswith("<p>reviewed</p>")
    long = found[4]
    assert len(long.get("name", "")) == 100 and long.get("name", "").endswith("…")
    assert "长标题" * 40 in long.findtext("summary", "")  # the whole title is kept in the summary
    step = long.find("steps/step")
    assert step is not None
    # Rich text is HTML: the case's own "<" and "&" are escaped inside it; control characters are dropped.
    assert step.findtext("actions") == "<p>输入 &lt;script&gt; &amp; 密码&lt;8位</p><p>Test data: a&amp;b</p>"
    assert step.findtext("expectedresults") == '<p>提示 "错误"</p>'


def test_xray_csv_one_row_per_step_grouped_by_issue_id() -> None:
    items = cases()
    data = write("xray", items, "zh")
    assert not data.startswith(b"\xef\xbb\xbf"), "the importer must see 'Issue ID' as the first column"
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8"))))
    assert list(rows[0]) == list(XRAY_COLUMNS)
    assert list(XRAY_COLUMNS[:4]) == ["Issue ID", "Test Type", "Test Summary", "Test Priority"]
    assert list(XRAY_COLUMNS[4:7]) == ["Action", "Data", "Result"]
    assert len(rows) == sum(len(c.steps) for c in items)
    tests: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        tests.setdefault(row["Issue ID"], []).append(row)
    assert list(tests) == [str(n) for n in range(1, len(items) + 1)]
    for case, steps in zip(items, tests.values(), strict=True):
        first, rest = steps[0], steps[1:]
        assert first["Test Type"] == "Manual" and first["Test Summary"]
        assert first["Test Priority"] == {"P0": "Highest", "P1": "High", "P2": "Medium", "P3": "Low"}[case.priority]
        assert all(r["Test Summary"] == "" and r["Labels"] == "" and r["Test Type"] == "Manual" for r in rest)
        assert [r["Result"] for r in steps] == [s.expected for s in case.steps]
        assert first["Test Repo"] == escape_formula(case.module.replace("/", "-").strip())
        assert case.id in first["Description"]
    labels = [tests[str(n)][0]["Labels"].split(";") for n in range(1, 5)]
    assert labels[0][:2] == ["aitp", "rule-based-draft"] and labels[1][1] == "reviewed"
    assert labels[3][1] == "rejected" and all(" " not in label for each in labels for label in each)
    assert tests["1"][0]["Description"].startswith("规则生成的草稿：使用前请评审")
    assert [(r["Action"], r["Data"]) for r in tests["3"]] == [("输入用户名", "-1"), ("点击登录", "'+cmd|' /C calc'!A0")]
    assert tests["1"][0]["Test Summary"] == '\'=HYPERLINK("http://evil")'


def test_xmind_is_a_zip_of_requirement_modules_cases_steps_expected() -> None:
    items = cases()
    data = write("xmind", items, "zh", title="登录与购物车 PRD")
    assert data == write("xmind", items, "zh", title="登录与购物车 PRD"), "the same cases give the same bytes"
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert set(archive.namelist()) == {"content.json", "metadata.json", "manifest.json"}
        content = json.loads(archive.read("content.json"))
        manifest = json.loads(archive.read("manifest.json"))
        metadata = json.loads(archive.read("metadata.json"))
    assert set(manifest["file-entries"]) == {"content.json", "metadata.json"}
    assert metadata["creator"]["name"] == "aitp"
    assert isinstance(content, list) and len(content) == 1
    sheet = content[0]
    assert sheet["class"] == "sheet" and sheet["title"] == "登录与购物车 PRD"
    root = sheet["rootTopic"]
    assert root["class"] == "topic" and root["title"] == "登录与购物车 PRD"
    modules = root["children"]["attached"]
    assert [m["title"] for m in modules] == list(dict.fromkeys(c.module for c in items))
    by_id: dict[str, dict[str, Any]] = {}
    for module in modules:
        for topic in module["children"]["attached"]:
            assert topic["class"] == "topic"
            by_id[topic["id"]] = topic
            assert next(c for c in items if c.id == topic["id"]).module == module["title"]
    assert sorted(by_id) == sorted(c.id for c in items)
    for case in items:
        topic = by_id[case.id]
        assert topic["title"] == case.title
        steps = topic["children"]["attached"]
        assert all(s["title"].startswith(f"{n}. ") for n, s in enumerate(steps, start=1))
        assert [s["children"]["attached"][0]["title"] for s in steps] == [s.expected for s in case.steps]
        assert topic["markers"] == [{"markerId": f"priority-{int(case.priority[1]) + 1}"}]
        assert case.priority in topic["labels"]
        assert f"aitp 用例编号: {case.id}" in topic["notes"]["plain"]["content"]
        for precondition in case.preconditions:
            assert precondition in topic["notes"]["plain"]["content"]
    assert by_id["tc-1"]["labels"][0] == "规则生成的草稿：使用前请评审" and by_id["tc-2"]["labels"][0] == "已评审"
    assert [s["title"] for s in by_id["tc-3"]["children"]["attached"]] == [
        "1. 输入用户名（数据：-1）",
        "2. 点击登录（数据：+cmd|' /C calc'!A0）",
    ]
    ids = [t["id"] for t in _walk(root)]
    assert len(ids) == len(set(ids)), "topic ids are unique"


def test_every_format_writes_an_empty_export() -> None:
    for name, found in EXPORTERS.items():
        data = found.write(ExportDocument([], None, "空", "zh", found.layouts[0]))
        assert data, name


def _walk(topic: dict[str, Any]) -> list[dict[str, Any]]:
    out = [topic]
    for child in topic.get("children", {}).get("attached", []):
        out += _walk(child)
    return out
