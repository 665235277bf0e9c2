"""``testcase.generate`` end to end: live server, fake model upstream, knowledge base, review, export."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import secrets
from typing import Any

import openpyxl
import pytest

from tests.agents.answers import CHECKOUT_EN, LOGIN_ZH, valid_answer
from tests.agents.conftest import task_config, wait_task
from tests.conftest import PostgresDatabases, Server, ServerFactory, gateway_config
from tests.fakes.llm_upstream import FakeUpstream, Reply


def _config(fake: FakeUpstream) -> dict[str, Any]:
    # No upstream retries: the fallback tests want the failure at once.
    return {**gateway_config(fake, retries={"num_retries": 0}), **task_config()}


@pytest.fixture(scope="module")
def gen_sqlite(fake: FakeUpstream, server_factory: ServerFactory) -> Server:
    return server_factory(_config(fake))


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
async def gen(
    request: pytest.FixtureRequest, fake: FakeUpstream, server_factory: ServerFactory, pg_databases: PostgresDatabases
) -> Server:
    """The generation server on both databases (for what touches the stores)."""
    if request.param == "sqlite":
        return request.getfixturevalue("gen_sqlite")  # type: ignore[no-any-return]
    return await asyncio.to_thread(server_factory, _config(fake), await pg_databases.create())


def project_key(server: Server, role: str = "member") -> tuple[str, str]:
    project = f"tc-{secrets.token_hex(4)}"
    return project, server.new_key(project, role=role)


def generate(server: Server, key: str, **input_: Any) -> dict[str, Any]:
    response = server.api("POST", "/api/tasks", key=key, json={"kind": "testcase.generate", "input": input_})
    assert response.status_code == 201, response.text
    return dict(response.json())


async def done(server: Server, key: str, task: dict[str, Any]) -> dict[str, Any]:
    finished = await wait_task(server, key, task["id"], "succeeded", "failed", timeout=40)
    assert finished["status"] == "succeeded", finished
    return finished


async def test_generates_cases_with_knowledge_and_coverage(gen: Server, fake: FakeUpstream) -> None:
    project, key = project_key(gen)
    doc = gen.api(
        "POST",
        "/api/kb/documents",
        key=key,
        json={
            "text": "# 账号安全规范\n\n密码错误锁定策略：连续 5 次失败锁定 30 分钟，由安全中心解锁。",
            "source": "sec.md",
        },
    )
    assert doc.status_code == 201, doc.text
    fake.script(
        "qwen-plus", Reply(content=valid_answer("zh", duplicate=True), prompt_tokens=900, completion_tokens=400)
    )
    task = await done(gen, key, generate(gen, key, requirement=LOGIN_ZH, module="登录"))
    result = task["result"]
    assert result["source"] == "llm" and result["fallback"] is None
    assert result["prompt"]["name"] == "testcase.generate" and result["prompt"]["version"] >= 1
    assert result["case_count"] == 2 and result["llm_calls"] == 1 and result["dropped_duplicates"] == 1
    assert result["requirement"]["language"] == "zh"
    assert result["coverage"]["uncovered"] == [] and result["coverage"]["ratio"] == 1.0
    assert result["open_questions"] == ["锁定期间是否允许找回密码？"]
    # The knowledge base passage went into the prompt the model saw.
    sent = json.dumps(fake.requests_for("qwen-plus")[-1]["messages"], ensure_ascii=False)
    assert "由安全中心解锁" in sent and "密码长度必须在 8 到 20 位之间" in sent
    # Stored and listed, with prompt provenance; every step reported progress.
    listed = gen.api("GET", f"/api/testcases?task_id={task['id']}", key=key).json()
    assert listed["total"] == 2
    first = listed["items"][0]
    assert first["title"] == "密码 8 位可以登录" and first["source"] == "llm" and first["review_status"] == "pending"
    assert first["steps"][1]["data"] == "Abc12345" and first["covers"] == ["R1"]
    assert first["prompt_version"] == result["prompt"]["version"]
    steps = [r["current_step"] for r in await gen.rows(
        "SELECT data AS current_step FROM task_events WHERE task_id = :t AND type = 'task_progress'", t=task["id"]
    )]  # fmt: skip
    text = " ".join(str(s) for s in steps)
    for name in ("load_requirement", "split_points", "retrieve", "render_prompt", "call_llm", "validate", "dedupe"):
        assert name in text, (name, text)
    # The model call was budgeted and recorded under the task's project.
    rows = await gen.wait_rows(
        "SELECT project_id, prompt_name FROM usage_records WHERE request_id LIKE :r", r=f"task-{task['id']}%"
    )
    assert rows[0]["project_id"] == project and rows[0]["prompt_name"] == "testcase.generate"


async def test_invalid_answer_is_repaired(gen_sqlite: Server, fake: FakeUpstream) -> None:
    _, key = project_key(gen_sqlite)
    broken = valid_answer("en").replace('"priority": "P0"', '"priority": "High"')
    fake.script("qwen-plus", Reply(content=broken), Reply(content=valid_answer("en")))
    task = await done(gen_sqlite, key, generate(gen_sqlite, key, requirement=CHECKOUT_EN, use_knowledge=False))
    result = task["result"]
    assert result["source"] == "llm" and result["llm_calls"] == 2 and result["requirement"]["language"] == "en"
    repair = json.dumps(fake.requests_for("qwen-plus")[-1]["messages"], ensure_ascii=False)
    assert "priority" in repair and "High" in repair  # the repair prompt carried the answer and its errors


async def test_garbage_everywhere_falls_back_to_heuristic(gen_sqlite: Server, fake: FakeUpstream) -> None:
    _, key = project_key(gen_sqlite)
    fake.script("qwen-plus", Reply(content="Sure! Here are some test cases."), Reply(content="{}"), Reply(content="[]"))
    task = await done(
        gen_sqlite, key, generate(gen_sqlite, key, requirement=LOGIN_ZH, case_types=["boundary", "negative"])
    )
    result = task["result"]
    assert result["source"] == "heuristic" and result["fallback"]["reason"] == "invalid_output"
    assert result["llm_calls"] == 3 and result["prompt"] is None
    assert len(fake.requests_for("qwen-plus")) == 3
    cases = result["cases"]
    assert cases and all(c["source"] == "heuristic" and c["type"] in ("boundary", "negative") for c in cases)
    values = json.dumps(cases, ensure_ascii=False)
    for boundary in ("7", "8", "20", "21"):
        assert boundary in values
    metrics = gen_sqlite.api("GET", "/metrics").text
    assert 'aitp_generation_fallbacks_total{reason="invalid_output"}' in metrics
    assert 'aitp_testcases_generated_total{source="heuristic"}' in metrics


async def test_unreachable_model_falls_back(gen_sqlite: Server, fake: FakeUpstream) -> None:
    _, key = project_key(gen_sqlite)
    fake.set_default("qwen-plus", Reply(hang_s=3))  # times out (retries.timeout_s is 1.5 s)
    fake.set_default("qwen-turbo", Reply(status=503))  # and the fallback fails
    task = await done(gen_sqlite, key, generate(gen_sqlite, key, requirement=CHECKOUT_EN, use_knowledge=False))
    assert task["result"]["source"] == "heuristic"
    assert task["result"]["fallback"]["reason"] == "no_model_reachable"


async def test_budget_block_falls_back(gen_sqlite: Server, fake: FakeUpstream) -> None:
    project, key = project_key(gen_sqlite)
    response = gen_sqlite.api(
        "PUT", "/api/budgets", json={"project": project, "limit_tokens": 10, "period": "day", "action": "block"}
    )
    assert response.status_code in (200, 201), response.text
    task = await done(gen_sqlite, key, generate(gen_sqlite, key, requirement=LOGIN_ZH, use_knowledge=False))
    assert task["result"]["source"] == "heuristic"
    assert task["result"]["fallback"]["reason"] == "budget_blocked"
    assert fake.requests_for("qwen-plus") == []


async def test_review_feeds_acceptance_rate_examples_and_exports(gen: Server, fake: FakeUpstream) -> None:
    _, key = project_key(gen)
    fake.script("qwen-plus", Reply(content=valid_answer("zh", title_prefix="复核-")))
    task = await done(gen, key, generate(gen, key, requirement=LOGIN_ZH, use_knowledge=False))
    version = task["result"]["prompt"]["version"]
    ids = [c["id"] for c in task["result"]["cases"]]
    accepted = gen.api("POST", f"/api/testcases/{ids[0]}/review", key=key, json={"action": "accept", "note": "好"})
    assert accepted.status_code == 200 and accepted.json()["review_status"] == "accepted"
    edit = {
        "action": "edit",
        "changes": {"priority": "P0", "steps": [{"step": 9, "action": "输错 5 次", "expected": "锁定"}]},
    }
    edited = gen.api("POST", f"/api/testcases/{ids[1]}/review", key=key, json=edit).json()
    assert edited["edited"] and edited["priority"] == "P0" and edited["steps"][0]["step"] == 1
    # Bad reviews change nothing.
    assert gen.api("POST", f"/api/testcases/{ids[1]}/review", key=key, json={"action": "maybe"}).status_code == 400
    bad = gen.api(
        "POST", f"/api/testcases/{ids[1]}/review", key=key, json={"action": "edit", "changes": {"priority": "P9"}}
    )
    assert bad.status_code == 400 and "priority" in bad.json()["error"]["message"]
    viewer = gen.new_key(gen.api("GET", f"/api/testcases/{ids[0]}", key=key).json()["project_id"], role="viewer")
    assert gen.api("POST", f"/api/testcases/{ids[0]}/review", key=viewer, json={"action": "reject"}).status_code == 403
    _, stranger = project_key(gen)
    assert gen.api("GET", f"/api/testcases/{ids[0]}", key=stranger).status_code == 404
    assert (
        gen.api("POST", f"/api/testcases/{ids[0]}/review", key=stranger, json={"action": "reject"}).status_code == 404
    )
    assert gen.api("GET", f"/api/tasks/{task['id']}/testcases", key=stranger).status_code == 404
    # Acceptance per prompt version (2 reviewed, both accepted — an edit is an acceptance).
    stats = gen.api("GET", "/api/prompts/testcase.generate/stats").json()
    row = next(v for v in stats["versions"] if v["version"] == version)
    assert row["reviewed_cases"] >= 2 and row["acceptance_rate"] is not None
    # Accepted cases are knowledge-base examples now.
    hits = gen.api("GET", "/api/kb/search", key=key, params={"q": "密码 8 位 登录", "k": 5}).json()["items"]
    assert any(h["kind"] == "example" and "复核-密码 8 位可以登录" in h["text"] for h in hits), hits
    # Exports, Chinese intact.
    base = f"/api/tasks/{task['id']}/testcases"
    as_json = gen.api("GET", base, key=key, params={"format": "json"})
    assert as_json.status_code == 200 and as_json.json()["cases"][0]["title"] == "复核-密码 8 位可以登录"
    as_csv = gen.api("GET", base, key=key, params={"format": "csv", "lang": "en"})
    assert as_csv.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(as_csv.content.decode("utf-8-sig"))))
    assert rows[0]["Title"] == "复核-密码 8 位可以登录" and rows[1]["Review status"] == "accepted"
    assert [r["Draft or reviewed"] for r in rows] == ["reviewed", "reviewed"]
    as_xlsx = gen.api("GET", base, key=key, params={"format": "xlsx"})
    book = openpyxl.load_workbook(io.BytesIO(as_xlsx.content))
    cells = [c.value for row in book.worksheets[0].iter_rows() for c in row]
    assert "复核-密码 8 位可以登录" in cells and len(book.worksheets) == 2
    as_md = gen.api("GET", base, key=key, params={"format": "md"})
    assert "复核-连续输错 5 次后账号锁定" in as_md.content.decode()
    assert gen.api("GET", base, key=key, params={"format": "pdf"}).status_code == 400


async def test_generates_from_a_knowledge_base_document(gen_sqlite: Server, fake: FakeUpstream) -> None:
    _, key = project_key(gen_sqlite)
    doc = gen_sqlite.api(
        "POST",
        "/api/kb/documents",
        key=key,
        files={"file": ("checkout.md", ("# Checkout\n\n" + CHECKOUT_EN).encode(), "text/markdown")},
    )
    assert doc.status_code == 201, doc.text
    fake.script("qwen-plus", Reply(content=valid_answer("en")))
    task = await done(gen_sqlite, key, generate(gen_sqlite, key, document_id=doc.json()["id"]))
    assert task["result"]["requirement"]["source"] == f"kb:{doc.json()['id']}"
    sent = json.dumps(fake.requests_for("qwen-plus")[-1]["messages"])
    assert "SMS verification" in sent
    missing = gen_sqlite.api(
        "POST", "/api/tasks", key=key, json={"kind": "testcase.generate", "input": {"document_id": "nope"}}
    )
    assert missing.status_code == 400 and missing.json()["error"]["code"] == "document_not_found", missing.text
    assert missing.json()["error"]["param"] == "input.document_id"
    _, other = project_key(gen_sqlite)  # another project's document is "not found", exactly like a missing one
    body = {"kind": "testcase.generate", "input": {"document_id": doc.json()["id"]}}
    elsewhere = gen_sqlite.api("POST", "/api/tasks", key=other, json=body)
    assert elsewhere.status_code == 400 and elsewhere.json()["error"]["code"] == "document_not_found"


@pytest.mark.parametrize(
    ("input_", "field"),
    [
        ({}, "input"),
        ({"requirement": "x", "document_id": "d"}, "input"),
        ({"requirement": "x", "case_types": ["fuzzing"]}, "input.case_types[0]"),
        ({"requirement": "x", "max_cases": 0}, "input.max_cases"),
        ({"requirement": "x", "language": "fr"}, "input.language"),
        ({"requirement": "x", "colour": "red"}, "input.colour"),
    ],
)
def test_bad_input_is_refused_naming_the_field(gen_sqlite: Server, input_: dict[str, Any], field: str) -> None:
    _, key = project_key(gen_sqlite)
    response = gen_sqlite.api("POST", "/api/tasks", key=key, json={"kind": "testcase.generate", "input": input_})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == field


@pytest.mark.parametrize("embedded", ["sqlite"], indirect=True)
async def test_echo_only_server_uses_the_heuristic(embedded: Server) -> None:
    key = embedded.new_key(f"tc-{secrets.token_hex(4)}")
    task = await done(embedded, key, generate(embedded, key, requirement=LOGIN_ZH))
    result = task["result"]
    assert result["source"] == "heuristic" and result["fallback"]["reason"] == "echo_only"
    assert result["coverage"]["ratio"] > 0 and result["cases"]
