"""TestCaseService.export, as REST and MCP call it: options, defaults, refusals, file names."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

import openpyxl
import pytest

from agents.testcases.export import EXPORTERS
from core.errors import InvalidRequest
from tests.agents.testcases.service_setup import MEMBER_A, Setup, case, service_on

RESULT = {
    "requirement": {"source": "text", "chars": 40, "language": "zh"},
    "requirement_points": [{"id": "R1", "text": "密码为 8-20 位"}],
}


@pytest.fixture
async def done(tmp_path: Path) -> AsyncIterator[Setup]:
    cases = [
        case("tc_1", title="密码 7 位时提示长度不足"),
        case("tc_2", title="密码 8 位可以登录", source="llm"),
        case("tc_3", title="密码 21 位时提示长度超限"),
    ]
    async with service_on(f"sqlite+aiosqlite:///{tmp_path}/aitp.db", cases) as setup:
        await setup.succeed(RESULT, {"requirement": "# 登录 PRD\n\n密码为 8-20 位。"})
        await setup.service.review_many(MEMBER_A, setup.task_id, ["tc_2"], ["tc_3"])
        yield setup


def rows(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))


async def test_defaults_are_the_task_language_and_every_case_but_the_rejected(done: Setup) -> None:
    exported = await done.service.export(MEMBER_A, done.task_id, "csv")
    assert exported.media_type == "text/csv; charset=utf-8" and exported.cases == 2
    assert exported.filename == f"测试用例-{done.task_id}.csv"
    table = rows(exported.data)
    assert [r["用例编号"] for r in table] == ["tc_1", "tc_2"]
    assert [r["草稿或已评审"] for r in table] == ["规则生成的草稿：使用前请评审", "已评审"]
    everything = rows((await done.service.export(MEMBER_A, done.task_id, "csv", status="all", lang="en")).data)
    assert [(r["ID"], r["Draft or reviewed"]) for r in everything] == [
        ("tc_1", "rule-based draft: review before use"),
        ("tc_2", "reviewed"),
        ("tc_3", "rejected"),
    ]
    only = await done.service.export(MEMBER_A, done.task_id, "json", status="rejected")
    assert [c["id"] for c in json.loads(only.data)["cases"]] == ["tc_3"]


async def test_every_format_exports_with_its_own_name_and_type(done: Setup) -> None:
    for name, found in EXPORTERS.items():
        exported = await done.service.export(MEMBER_A, done.task_id, name.upper(), lang="en")
        assert exported.filename == f"testcases-{done.task_id}.{found.resource_suffix}"
        assert exported.media_type == found.media_type and exported.data
    book = openpyxl.load_workbook(io.BytesIO((await done.service.export(MEMBER_A, done.task_id, "excel")).data))
    assert book.sheetnames == ["测试用例", "覆盖率"]
    markdown = (await done.service.export(MEMBER_A, done.task_id, "markdown", layout="step")).data.decode()
    assert markdown.startswith("# 登录 PRD\n") and "| 用例编号 | 用例标题 | 步骤编号 |" in markdown


@pytest.mark.parametrize(
    ("fmt", "options", "param", "says"),
    [
        ("pdf", {}, "format", "'format' must be one of json, csv, xlsx, md, zentao, testlink, xray, xmind; got 'pdf'"),
        ("csv", {"layout": "grid"}, "layout", "'layout' must be one of case, step; got 'grid'"),
        ("xray", {"layout": "case"}, "layout", "format 'xray' has one layout, 'step'"),
        ("zentao", {"layout": "step"}, "layout", "'layout' chooses between case and step for csv, xlsx, md"),
        ("csv", {"lang": "fr"}, "lang", "'lang' must be one of zh, en; got 'fr'"),
        ("csv", {"status": "done"}, "status", "'status' must be one of pending, accepted, rejected, all"),
    ],
)
async def test_bad_options_are_refused_naming_the_valid_ones(
    done: Setup, fmt: str, options: dict[str, str], param: str, says: str
) -> None:
    with pytest.raises(InvalidRequest) as refused:
        await done.service.export(MEMBER_A, done.task_id, fmt, **options)
    assert refused.value.param == param and says in refused.value.message
