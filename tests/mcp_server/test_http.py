"""The MCP server over streamable HTTP, driven by the official SDK client against a live ``aitp serve``."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import zipfile
from collections.abc import AsyncIterator
from typing import Any

import httpx
import httpx2
import openpyxl
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import BlobResourceContents, ElicitResult, ResourceLink, TextResourceContents

from tests.agents.answers import LOGIN_ZH
from tests.agents.conftest import task_config, wait_task
from tests.conftest import Server, ServerFactory
from tests.gateway.prompts.conftest import spec

TOOLS = {
    "generate_test_cases",
    "get_test_cases",
    "review_test_cases",
    "export_test_cases",
    "generate_automation",
    "review_task",
    "get_task_status",
    "list_tasks",
    "cancel_task",
    "search_knowledge",
    "add_knowledge",
    "list_prompts",
    "render_prompt",
    "get_budget_status",
    "run_browser_test",
    "get_browser_results",
    "inspect_page",
    "export_browser_test",
}
MODES = ["legacy", "2026-07-28"]


@pytest.fixture(scope="module")
async def mcp_server(server_factory: ServerFactory) -> Server:
    # A small result budget, so that a generation's cases come back in several pages.
    # Loopback is allowed so that knowledge can be fetched from a page the tests serve.
    config = {**task_config(), "mcp": {"result_tokens": 900}, "outbound": {"allow_loopback": True}}
    return await asyncio.to_thread(server_factory, config)


@contextlib.asynccontextmanager
async def connect(server: Server, key: str, mode: str = "legacy", **kw: Any) -> AsyncIterator[Client]:
    http = httpx2.AsyncClient(headers={"authorization": f"Bearer {key}"}, timeout=60)
    async with Client(streamable_http_client(f"{server.base_url}/mcp", http_client=http), mode=mode, **kw) as client:
        yield client


def structured(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content[0].text if result.content else result
    assert isinstance(result.structured_content, dict), result
    return result.structured_content


def text_of(resource: Any) -> str:
    content = resource.contents[0]
    assert isinstance(content, TextResourceContents), content
    return content.text


def tool_error(result: Any) -> str:
    assert result.is_error, result.structured_content
    return str(result.content[0].text)


@pytest.mark.parametrize("mode", MODES)
async def test_tools_have_typed_inputs_and_outputs(mcp_server: Server, mode: str) -> None:
    async with connect(mcp_server, mcp_server.new_key(), mode) as client:
        listed = (await client.list_tools()).tools
    assert {t.name for t in listed} == TOOLS
    for tool in listed:
        assert tool.description, tool.name
        assert tool.input_schema["type"] == "object", tool.name
        assert tool.output_schema is not None and tool.output_schema.get("type") == "object", tool.name
    generate = next(t for t in listed if t.name == "generate_test_cases")
    assert generate.input_schema["properties"]["max_cases"]["description"]
    review = next(t for t in listed if t.name == "review_task")
    assert "answer" not in review.input_schema["properties"], "the resolved parameter is not an argument"


async def test_generate_review_export_on_the_heuristic_path_in_chinese(mcp_server: Server) -> None:
    key = mcp_server.new_key()
    progress: list[tuple[float, str | None]] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, message))

    async with connect(mcp_server, key) as client:
        outcome = structured(
            await client.call_tool(
                "generate_test_cases",
                {"requirement": LOGIN_ZH, "max_cases": 30, "wait_seconds": 60},
                progress_callback=on_progress,
            )
        )
        task = outcome["task"]
        assert task["status"] == "succeeded", task
        assert task["summary"] and "cases" in task["summary"]
        assert "规则草稿：使用前请评审" in task["summary"]  # the rule-based path says what its cases are
        assert progress, "no progress notification arrived while waiting"
        assert all(message and message.startswith("testcase.generate") for _, message in progress)
        task_id = task["id"]

        # Pages add up to the whole, each within the result budget.
        first = outcome["cases"]
        total = first["total"]
        assert total > len(first["items"]) > 0, "the small budget should have paged the cases"
        ids = [case["id"] for case in first["items"]]
        cursor = first["next_cursor"]
        pages = 1
        while cursor:
            page = structured(await client.call_tool("get_test_cases", {"task_id": task_id, "cursor": cursor}))
            ids += [case["id"] for case in page["items"]]
            cursor = page["next_cursor"]
            pages += 1
        assert len(ids) == len(set(ids)) == total and pages > 1
        assert any("密码" in case["title"] for case in first["items"])
        assert all(case["draft"] and case["label"] == "规则草稿：使用前请评审" for case in first["items"])

        reviewed = structured(
            await client.call_tool(
                "review_test_cases",
                {
                    "task_id": task_id,
                    "accepted": ids[:3],
                    "rejected": ids[3:4],
                    "edits": {ids[4]: {"title": "密码长度为 8 位时可以登录（已编辑）"}},
                },
            )
        )
        assert reviewed["accepted"] == ids[:3]
        assert reviewed["rejected"] == [ids[3]]
        assert reviewed["edited"] == [ids[4]]
        assert reviewed["pending"] == total - 5

        link = structured(await client.call_tool("export_test_cases", {"task_id": task_id, "format": "md"}))
        assert link["uri"] == f"task://{task_id}/testcases.md" and link["cases"] == total - 1  # not the rejected one
        whole = await client.read_resource(link["uri"])
        text = text_of(whole)
        assert "密码长度为 8 位时可以登录（已编辑）" in text
        csv = await client.read_resource(f"task://{task_id}/testcases.csv")
        assert text_of(csv).count("\n") >= total

    # What MCP reviewed is what REST sees: one service, one store.
    rest = mcp_server.api("GET", f"/api/testcases?task_id={task_id}&status=accepted&limit=100", key=key).json()
    assert rest["total"] == 4


@pytest.mark.parametrize("mode", MODES)
async def test_review_task_asks_the_person_in_the_ide(mcp_server: Server, mode: str) -> None:
    key = mcp_server.new_key()
    submitted = mcp_server.api("POST", "/api/tasks", key=key, json={"kind": "system.sleep", "input": {"review": True}})
    task_id = submitted.json()["id"]
    await wait_task(mcp_server, key, task_id, "reviewing")
    asked: list[str] = []

    async def elicit(context: Any, params: Any) -> ElicitResult:
        asked.append(params.message)
        return ElicitResult(action="accept", content={"decision": "approve", "feedback": "looks right"})

    async with connect(mcp_server, key, mode, elicitation_callback=elicit) as client:
        status = structured(await client.call_tool("get_task_status", {"task_id": task_id}))
        assert status["status"] == "reviewing" and status["awaiting_review"]["question"].startswith("approve")
        structured(await client.call_tool("review_task", {"task_id": task_id}))
    assert asked and "approve or reject" in asked[0]
    done = await wait_task(mcp_server, key, task_id, "succeeded")
    assert done["result"]["review"]["action"] == "approved"
    assert done["result"]["review"]["feedback"] == "looks right"


async def test_review_task_takes_the_decision_as_arguments(mcp_server: Server) -> None:
    key = mcp_server.new_key()
    submitted = mcp_server.api("POST", "/api/tasks", key=key, json={"kind": "system.sleep", "input": {"review": True}})
    task_id = submitted.json()["id"]
    await wait_task(mcp_server, key, task_id, "reviewing")
    async with connect(mcp_server, key) as client:  # no elicitation callback: arguments are the only way
        structured(
            await client.call_tool("review_task", {"task_id": task_id, "decision": "reject", "feedback": "too long"})
        )
    task = mcp_server.api("GET", f"/api/tasks/{task_id}", key=key).json()
    assert task["review"]["action"] == "rejected" and task["review"]["feedback"] == "too long"


async def test_no_key_or_a_revoked_key_is_refused_before_mcp(mcp_server: Server) -> None:
    hello = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    headers = {"accept": "application/json, text/event-stream"}
    response = httpx.post(f"{mcp_server.base_url}/mcp", json=hello, headers=headers)
    assert response.status_code == 401 and response.json()["error"]["code"] == "missing_api_key"
    key = mcp_server.new_key()
    key_id = next(k["id"] for k in mcp_server.api("GET", "/api/keys").json()["items"] if key.startswith(k["prefix"]))
    assert mcp_server.api("DELETE", f"/api/keys/{key_id}").status_code in (200, 204)
    response = httpx.post(
        f"{mcp_server.base_url}/mcp", json=hello, headers={**headers, "authorization": f"Bearer {key}"}
    )
    assert response.status_code == 401 and response.json()["error"]["code"] == "key_revoked"


async def test_viewer_and_other_projects_are_refused(mcp_server: Server) -> None:
    owner = mcp_server.new_key("mcp-a")
    submitted = mcp_server.api("POST", "/api/tasks", key=owner, json={"kind": "system.sleep", "input": {}})
    task_id = submitted.json()["id"]
    async with connect(mcp_server, mcp_server.new_key("mcp-a", role="viewer")) as viewer:
        refused = tool_error(await viewer.call_tool("generate_test_cases", {"requirement": "登录"}))
        assert "role_forbidden" in refused and "viewer" in refused
        assert structured(await viewer.call_tool("get_task_status", {"task_id": task_id}))["id"] == task_id
    async with connect(mcp_server, mcp_server.new_key("mcp-b")) as stranger:
        missing = tool_error(await stranger.call_tool("get_task_status", {"task_id": task_id}))
        assert "not_found" in missing
        missing = tool_error(await stranger.call_tool("cancel_task", {"task_id": task_id}))
        assert "not_found" in missing


async def test_malformed_arguments_are_tool_errors_and_the_session_survives(mcp_server: Server) -> None:
    async with connect(mcp_server, mcp_server.new_key()) as client:
        assert "max_cases" in tool_error(
            await client.call_tool("generate_test_cases", {"requirement": "x", "max_cases": 1000})
        )
        both = tool_error(await client.call_tool("generate_test_cases", {"requirement": "x", "document_id": "d1"}))
        assert "exactly one" in both
        assert "cursor" in tool_error(await client.call_tool("get_test_cases", {"task_id": "t", "cursor": "!!"}))
        assert "required" in tool_error(await client.call_tool("get_task_status", {})).lower()
        # Still usable afterwards.
        assert structured(await client.call_tool("list_tasks", {"limit": 1}))["total"] >= 0


async def test_knowledge_prompts_and_budget(mcp_server: Server) -> None:
    key = mcp_server.new_key("mcp-kb")
    async with connect(mcp_server, key) as client:
        added = structured(
            await client.call_tool(
                "add_knowledge", {"title": "登录规则", "text": "连续输错 5 次密码后账号锁定 30 分钟。"}
            )
        )
        assert added["id"]
        hits = structured(await client.call_tool("search_knowledge", {"query": "账号锁定多久", "k": 3}))
        assert hits["items"] and "锁定" in hits["items"][0]["text"]
        assert hits["items"][0]["document_id"] == added["id"]
        document = await client.read_resource(f"kb://mcp-kb/documents/{added['id']}")
        assert "锁定 30 分钟" in text_of(document)
        with pytest.raises(Exception, match="no document"):
            await client.read_resource(f"kb://default/documents/{added['id']}")
        published = mcp_server.api("POST", "/api/prompts", json=spec("mcp.ideas"))
        assert published.status_code in (200, 201), published.text
        prompts = {p["name"]: p for p in structured(await client.call_tool("list_prompts", {}))["items"]}
        assert prompts["mcp.ideas"]["variables"]["required"] == ["topic"]
        rendered = structured(
            await client.call_tool("render_prompt", {"name": "mcp.ideas", "variables": {"topic": "登录"}})
        )
        assert rendered["name"] == "mcp.ideas" and rendered["version"] == 1
        assert rendered["messages"][-1]["content"] == "Write about 登录."
        missing = tool_error(await client.call_tool("render_prompt", {"name": "mcp.ideas", "variables": {}}))
        assert "topic" in missing
        budget = structured(await client.call_tool("get_budget_status", {}))
        assert budget["project"] == "mcp-kb" and isinstance(budget["budgets"], list)


async def test_exports_for_tools_and_bulk_review_errors_over_mcp(mcp_server: Server) -> None:
    key = mcp_server.new_key()
    async with connect(mcp_server, key) as client:
        outcome = structured(
            await client.call_tool("generate_test_cases", {"requirement": LOGIN_ZH, "max_cases": 8, "wait_seconds": 60})
        )
        task_id = outcome["task"]["id"]
        ids = [case["id"] for case in outcome["cases"]["items"]]
        cursor = outcome["cases"]["next_cursor"]
        while len(ids) < 3 and cursor:  # this server's small result budget pages the cases
            page = structured(await client.call_tool("get_test_cases", {"task_id": task_id, "cursor": cursor}))
            ids += [case["id"] for case in page["items"]]
            cursor = page["next_cursor"]
        assert outcome["task"]["status"] == "succeeded" and len(ids) >= 3

        # A bad edit anywhere refuses the whole batch, naming the case and the field.
        refused = await client.call_tool(
            "review_test_cases",
            {"task_id": task_id, "accepted": ids[:2], "edits": {ids[2]: {"priority": "P9", "colour": "red"}}},
        )
        message = tool_error(refused)
        assert "2 problems, nothing was changed" in message
        assert f"case {ids[2]}, 'edits.{ids[2]}.priority'" in message and f"'edits.{ids[2]}.colour'" in message
        rest = mcp_server.api("GET", f"/api/testcases?task_id={task_id}&status=pending&limit=100", key=key).json()
        assert rest["total"] == outcome["cases"]["total"], "nothing was reviewed"
        structured(await client.call_tool("review_test_cases", {"task_id": task_id, "accepted": ids[:1]}))

        # A binary export is a blob resource: the XLSX, with English headers and one row per step.
        exported = await client.call_tool(
            "export_test_cases", {"task_id": task_id, "format": "xlsx", "layout": "step", "lang": "en"}
        )
        link = structured(exported)
        # The result carries an MCP resource link to the file, beside the structured fields.
        first = exported.content[0]
        assert isinstance(first, ResourceLink) and str(first.uri) == link["uri"] and first.size == link["size"]
        assert first.name == link["filename"] and first.mime_type == link["mime_type"]
        assert link["uri"] == f"task://{task_id}/testcases.xlsx?layout=step&lang=en"
        assert link["binary"] and link["preview"] == "" and link["filename"] == f"testcases-{task_id}.xlsx"
        blob = (await client.read_resource(link["uri"])).contents[0]
        assert isinstance(blob, BlobResourceContents)
        data = base64.b64decode(blob.blob)
        assert len(data) == link["size"]
        sheet = openpyxl.load_workbook(io.BytesIO(data))["Test cases"]
        assert [c.value for c in sheet[1]][:3] == ["ID", "Title", "Module"]
        marks = {row[0]: row[13] for row in sheet.iter_rows(min_row=2, values_only=True)}
        assert marks[ids[0]] == "reviewed" and marks[ids[1]] == "rule-based draft: review before use"

        # A tool's format: ZenTao's import CSV in Chinese, read as text.
        zentao = structured(await client.call_tool("export_test_cases", {"task_id": task_id, "format": "zentao"}))
        assert zentao["uri"] == f"task://{task_id}/testcases.zentao.csv" and not zentao["binary"]
        assert zentao["preview"].startswith("所属模块,用例标题,前置条件,步骤,预期")
        assert text_of(await client.read_resource(zentao["uri"])).startswith("所属模块,用例标题")
        xmind = await client.read_resource(f"task://{task_id}/testcases.xmind")
        assert isinstance(xmind.contents[0], BlobResourceContents)
        with zipfile.ZipFile(io.BytesIO(base64.b64decode(xmind.contents[0].blob))) as archive:
            assert "content.json" in archive.namelist()

        bad = await client.call_tool("export_test_cases", {"task_id": task_id, "format": "xray", "layout": "case"})
        assert "format 'xray' has one layout" in tool_error(bad)
        templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
        assert "task://{task_id}/testcases.testlink.xml{?layout,lang,status}" in templates
