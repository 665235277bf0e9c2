"""Exports and bulk review over REST against a live ``aitp serve`` with no model (the rule-based path)."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from typing import Any
from urllib.parse import quote

import openpyxl
import pytest
from defusedxml import ElementTree

from tests.agents.answers import LOGIN_ZH
from tests.agents.conftest import project_key, wait_task
from tests.conftest import Server

REVIEW_COLUMNS = "SELECT id, review_status, edited, reviewed_at FROM testcases WHERE task_id = :t ORDER BY seq"


async def generated(server: Server) -> tuple[str, str, list[str]]:
    """A finished rule-based generation: (key, task id, case ids)."""
    key = project_key(server)
    task_input = {"requirement": LOGIN_ZH, "use_knowledge": False}
    submitted = server.api("POST", "/api/tasks", key=key, json={"kind": "testcase.generate", "input": task_input})
    assert submitted.status_code in (200, 201, 202), submitted.text
    task = await wait_task(server, key, submitted.json()["id"], "succeeded", "failed", timeout=60)
    assert task["status"] == "succeeded", task
    assert task["result"]["source"] == "heuristic"
    listed = server.api("GET", f"/api/testcases?task_id={task['id']}&limit=500", key=key).json()
    return key, task["id"], [c["id"] for c in listed["items"]]


@pytest.fixture(scope="module")
async def drafts(embedded: Server) -> tuple[str, str, list[str]]:
    """One generation the read-only tests share."""
    return await generated(embedded)


async def test_each_format_downloads_with_its_type_and_a_utf8_file_name(
    embedded: Server, drafts: tuple[str, str, list[str]]
) -> None:
    key, task_id, ids = drafts
    base = f"/api/tasks/{task_id}/testcases"
    expected = {
        "csv": ("text/csv; charset=utf-8", "csv"),
        "xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx"),
        "md": ("text/markdown; charset=utf-8", "md"),
        "json": ("application/json", "json"),
        "zentao": ("text/csv; charset=utf-8", "zentao.csv"),
        "testlink": ("application/xml; charset=utf-8", "testlink.xml"),
        "xray": ("text/csv; charset=utf-8", "xray.csv"),
        "xmind": ("application/vnd.xmind.workbook", "xmind"),
    }
    bodies: dict[str, bytes] = {}
    for fmt, (media, suffix) in expected.items():
        response = embedded.api("GET", base, key=key, params={"format": fmt})
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == media
        name = f"测试用例-{task_id}.{suffix}"  # the task generated in Chinese
        assert response.headers["content-disposition"] == (
            f"attachment; filename=\"testcases-{task_id}.{suffix}\"; filename*=UTF-8''{quote(name)}"
        )
        bodies[fmt] = response.content
    # Chinese headers by default, English on request; one row per step on request.
    zh = list(csv.reader(io.StringIO(bodies["csv"].decode("utf-8-sig"))))
    assert zh[0][:2] == ["用例编号", "用例标题"] and len(zh) == len(ids) + 1
    en = embedded.api("GET", base, key=key, params={"format": "csv", "lang": "en", "layout": "step"})
    assert en.headers["content-disposition"].startswith(f'attachment; filename="testcases-{task_id}.csv"')
    steps = list(csv.DictReader(io.StringIO(en.content.decode("utf-8-sig"))))
    assert list(steps[0])[:2] == ["ID", "Title"] and len(steps) > len(ids)
    assert {r["Draft or reviewed"] for r in steps} == {"rule-based draft: review before use"}
    assert {r["Source"] for r in steps} == {"rule-based"}
    book = openpyxl.load_workbook(io.BytesIO(bodies["xlsx"]))
    assert book.sheetnames == ["测试用例", "覆盖率"] and book["测试用例"].max_row == len(ids) + 1
    assert len(ElementTree.fromstring(bodies["testlink"]).findall("testcase")) == len(ids)
    with zipfile.ZipFile(io.BytesIO(bodies["xmind"])) as archive:
        root = json.loads(archive.read("content.json"))[0]["rootTopic"]
    assert root["title"] == "登录功能需求："
    assert sum(len(m["children"]["attached"]) for m in root["children"]["attached"]) == len(ids)
    zentao = bodies["zentao"].decode("utf-8-sig").split("\r\n", 1)[0]
    assert zentao == "所属模块,用例标题,前置条件,步骤,预期,关键词,优先级,用例类型,适用阶段"
    assert bodies["xray"].startswith(b"Issue ID,Test Type,Test Summary")


async def test_bad_options_are_400s_naming_the_valid_values(
    embedded: Server, drafts: tuple[str, str, list[str]]
) -> None:
    key, task_id, _ = drafts
    base = f"/api/tasks/{task_id}/testcases"
    bad = embedded.api("GET", base, key=key, params={"format": "pdf"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "format"
    assert "json, csv, xlsx, md, zentao, testlink, xray, xmind" in bad.json()["error"]["message"]
    layout = embedded.api("GET", base, key=key, params={"format": "xray", "layout": "case"})
    assert layout.status_code == 400 and layout.json()["error"]["param"] == "layout"
    lang = embedded.api("GET", base, key=key, params={"format": "csv", "lang": "de"})
    assert lang.status_code == 400 and "zh, en" in lang.json()["error"]["message"]


async def test_bulk_review_over_rest_is_atomic(embedded: Server) -> None:
    key, task_id, ids = await generated(embedded)
    url = f"/api/tasks/{task_id}/testcases/review"
    before = await embedded.rows(REVIEW_COLUMNS, t=task_id)
    body: dict[str, Any] = {
        "accepted": ids[:3],
        "rejected": ids[3:4],
        "edits": {ids[4]: {"title": "密码 8 位时可以登录"}, ids[5]: {"priority": "P7"}},
    }
    refused = embedded.api("POST", url, key=key, json=body)
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert error["param"] == f"edits.{ids[5]}.priority"
    assert error["errors"] == [
        {"case_id": ids[5], "field": f"edits.{ids[5]}.priority", "message": error["errors"][0]["message"]}
    ]
    assert "P0" in error["errors"][0]["message"] and "nothing was changed" in error["message"]
    assert await embedded.rows(REVIEW_COLUMNS, t=task_id) == before  # not one row changed
    body["edits"][ids[5]] = {"priority": "P0"}
    done = embedded.api("POST", url, key=key, json=body)
    assert done.status_code == 200, done.text
    assert done.json()["edited"] == [ids[4], ids[5]] and done.json()["pending"] == len(ids) - 6
    after = {r["id"]: r for r in await embedded.rows(REVIEW_COLUMNS, t=task_id)}
    assert [after[i]["review_status"] for i in ids[:6]] == ["accepted"] * 3 + ["rejected"] + ["accepted"] * 2
    # The export now tells the reviewed cases from the drafts, and leaves the rejected one out.
    exported = embedded.api("GET", f"/api/tasks/{task_id}/testcases", key=key, params={"format": "csv", "lang": "en"})
    marks = {r["ID"]: r["Draft or reviewed"] for r in csv.DictReader(io.StringIO(exported.content.decode("utf-8-sig")))}
    assert ids[3] not in marks and marks[ids[0]] == marks[ids[4]] == "reviewed"
    assert marks[ids[6]] == "rule-based draft: review before use"
