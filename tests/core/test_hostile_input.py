"""Hostile input is a 400 naming the field, the same on SQLite and PostgreSQL, never a 5xx.

Each case is one finding of a probe of the live server: a NUL character that
reached SQL (503 on PostgreSQL, stored on SQLite), integers wider than their
column (503 / 500 ``OverflowError``), over-long names and headers, nesting
deep enough to exhaust Python's recursion limit (500) or to be retried
upstream (502), and an SSE query that cut the stream mid-body.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import Server
from tests.fakes.llm_upstream import FakeUpstream

INT32_OVER = 2**31
INT64_OVER = 2**63
CHAT = [{"role": "user", "content": "hello"}]


def nested(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for _ in range(depth):
        value = {"a": value}
    return value


def nested_text(depth: int) -> str:
    # Built as text: orjson (and json) refuse to encode values this deep.
    return '{"a":' * depth + "1" + "}" * depth


def assert_400(response: httpx.Response, param: str | None, *words: str) -> dict[str, Any]:
    assert response.status_code == 400, response.text[:500]
    error: dict[str, Any] = response.json()["error"]
    assert error["type"] == "invalid_request_error", error
    assert error["param"] == param, error
    for word in words:
        assert word in error["message"], error
    assert response.headers["x-request-id"]
    assert response.headers.get("connection", "keep-alive") != "close"
    return error


@pytest.fixture(scope="module")
def client(gateway: Server) -> httpx.Client:
    """One keep-alive connection for every request of the module: an error must not drop it."""
    return httpx.Client(base_url=gateway.base_url, headers=gateway.admin_headers, timeout=30)


@pytest.fixture(scope="module")
def task_id(client: httpx.Client) -> str:
    created = client.post("/api/tasks", json={"kind": "system.sleep", "input": {"seconds": 0}})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


# --- NUL characters ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "param"),
    [
        ("/api/tasks/%00", "task_id"),
        ("/api/tasks/ab%00cd/events", "task_id"),
        ("/api/keys/key_%00", "key_id"),
        ("/api/budgets/%00/status", "budget_id"),
        ("/api/testcases/%00", "case_id"),
        ("/api/automation/cases/%00", "case_id"),
        ("/api/kb/documents/%00", "doc_id"),
        ("/api/prompts/a.b%00", "name"),
    ],
)
def test_nul_in_a_path_parameter(client: httpx.Client, path: str, param: str) -> None:
    assert_400(client.get(path), param, "NUL")


@pytest.mark.parametrize(
    ("path", "param"),
    [
        ("/api/tasks?kind=%00", "kind"),
        ("/api/kb/documents?source=%00", "source"),
        ("/api/testcases?task_id=x%00", "task_id"),
        ("/api/keys?project=%00", "project"),
        ("/api/budgets?project=%00", "project"),
        ("/api/usage?model=%00", "model"),
    ],
)
def test_nul_in_a_query_parameter(client: httpx.Client, path: str, param: str) -> None:
    assert_400(client.get(path), param, "NUL")


def test_nul_in_a_key_name_is_refused_and_nothing_is_stored(client: httpx.Client) -> None:
    assert_400(client.post("/api/keys", json={"name": "a\u0000b"}), "name", "NUL")
    names = [k["name"] for k in client.get("/api/keys").json()["items"]]
    assert not any("\u0000" in n for n in names)


def test_nul_anywhere_in_a_body(client: httpx.Client) -> None:
    body = {"kind": "system.sleep", "input": {"note": {"deep": ["ok", "x\u0000"]}}}
    assert_400(client.post("/api/tasks", json=body), "input.note.deep[1]", "NUL")


def test_nul_in_chat_user(client: httpx.Client, fake: FakeUpstream) -> None:
    response = client.post("/v1/chat/completions", json={"model": "turbo", "user": "eve\u0000", "messages": CHAT})
    assert_400(response, "user", "NUL")
    assert fake.requests == []


# --- integers wider than their column ------------------------------------------------------------
def test_key_tpm_beyond_int32(client: httpx.Client) -> None:
    assert_400(client.post("/api/keys", json={"name": "wide", "tpm": INT32_OVER}), "tpm", "2147483647")
    assert_400(client.post("/api/keys", json={"name": "wide", "rpm": INT32_OVER}), "rpm", "2147483647")
    ok = client.post("/api/keys", json={"name": "widest", "tpm": INT32_OVER - 1})
    assert ok.status_code == 201 and ok.json()["tpm"] == INT32_OVER - 1


def test_budget_limit_tokens_beyond_int64(client: httpx.Client) -> None:
    body = {"project": "default", "limit_tokens": INT64_OVER}
    assert_400(client.post("/api/budgets", json=body), "limit_tokens", "9223372036854775807")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", f"/api/prompts/a.b/versions/{INT64_OVER}", None),
        ("GET", f"/api/prompts/a.b/versions/{INT32_OVER}", None),
        ("PUT", "/api/prompts/a.b/labels/canary", {"version": INT64_OVER}),
        ("POST", "/api/prompts/a.b/rollback", {"version": INT32_OVER}),
        ("POST", "/api/prompts/a.b/render", {"version": INT64_OVER}),
    ],
)
def test_prompt_version_beyond_int32(client: httpx.Client, method: str, path: str, body: Any) -> None:
    assert_400(client.request(method, path, json=body), "version", "2147483647")


def test_long_idempotency_key(client: httpx.Client) -> None:
    body = {"kind": "system.sleep", "input": {"seconds": 0}}
    response = client.post("/api/tasks", json=body, headers={"idempotency-key": "k" * 5000})
    assert_400(response, "Idempotency-Key", "200")
    assert_400(client.post("/api/tasks", json={**body, "idempotency_key": "k" * 201}), "idempotency_key")


# --- what used to be a 500 -----------------------------------------------------------------------
@pytest.mark.parametrize("length", [5000, 200])
def test_long_prompt_name_on_render(client: httpx.Client, length: int) -> None:
    assert_400(client.post(f"/api/prompts/{'a' * length}/render", json={}), "name", "characters")


def test_yaml_nested_5000_deep(client: httpx.Client) -> None:
    text = "name: deep.yaml\nvariables: " + "[" * 5000 + "]" * 5000 + "\n"
    response = client.post("/api/prompts", content=text, headers={"content-type": "application/yaml"})
    assert_400(response, None, "nested deeper")


def test_yaml_alias_expansion_is_bounded(client: httpx.Client) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 12)]
    text = "\n".join(lines) + "\nname: bomb.yaml\n"
    response = client.post("/api/prompts", content=text, headers={"content-type": "application/yaml"})
    assert_400(response, None, "more than")


def test_variables_schema_nested_300_deep(client: httpx.Client) -> None:
    schema: dict[str, Any] = {"type": "object"}
    for _ in range(300):
        schema = {"type": "object", "properties": {"a": schema}}
    body = {"name": "deep.schema", "variables": schema, "template": [{"role": "user", "content": "x"}]}
    error = assert_400(client.post("/api/prompts", json=body), "variables", "nested deeper")
    assert "prompt spec" in error["message"]
    # Shallower than the body limit, still too deep for a JSON schema.
    schema = {"type": "object"}
    for _ in range(20):
        schema = {"type": "object", "properties": {"a": schema}}
    assert_400(client.post("/api/prompts", json={**body, "variables": schema}), "variables", "32 levels")


def test_review_corrected_body_nested_1000_deep(client: httpx.Client, task_id: str) -> None:
    text = '{"action": "corrected", "corrected_body": ' + nested_text(1000) + "}"
    response = client.post(f"/api/tasks/{task_id}/review", content=text, headers={"content-type": "application/json"})
    assert_400(response, "corrected_body", "nested deeper")


# --- what used to be retried upstream (502) --------------------------------------------------
@pytest.mark.parametrize(
    ("field", "value", "param"),
    [
        ("x_extra", nested_text(1000), "x_extra"),
        ("tools", '[{"type": "function", "function": {"name": "f", "parameters": ' + nested_text(100) + "}}]", "tools"),
        (
            "response_format",
            '{"type": "json_schema", "json_schema": {"name": "s", "schema": ' + nested_text(100) + "}}",
            "response_format",
        ),
    ],
)
def test_chat_nested_too_deep(client: httpx.Client, fake: FakeUpstream, field: str, value: str, param: str) -> None:
    text = '{"model": "turbo", "messages": [{"role": "user", "content": "hi"}], "' + field + '": ' + value + "}"
    response = client.post("/v1/chat/completions", content=text, headers={"content-type": "application/json"})
    assert_400(response, param, "nested deeper")
    assert fake.requests == [], "refused before any upstream call"


def test_chat_message_content_parts_nested_too_deep(client: httpx.Client, fake: FakeUpstream) -> None:
    part = '{"type": "text", "text": "hi", "extra": ' + nested_text(100) + "}"
    text = '{"model": "turbo", "messages": [{"role": "user", "content": [' + part + "]}]}"
    response = client.post("/v1/chat/completions", content=text, headers={"content-type": "application/json"})
    assert_400(response, "messages", "nested deeper")
    assert fake.requests == []


def test_embeddings_nul_and_depth(client: httpx.Client, fake: FakeUpstream) -> None:
    body = {"model": "text-embedding-v3", "input": ["fine", "bad\u0000"]}
    assert_400(client.post("/v1/embeddings", json=body), "input[1]", "NUL")
    assert fake.requests == []


# --- SSE: checked before the stream starts --------------------------------------------------------
@pytest.mark.parametrize("where", ["query", "header"])
def test_last_event_id_beyond_int64(client: httpx.Client, task_id: str, where: str) -> None:
    huge = str(INT64_OVER)
    if where == "query":
        response = client.get(f"/api/tasks/{task_id}/events", params={"last_event_id": huge})
    else:
        response = client.get(f"/api/tasks/{task_id}/events", headers={"last-event-id": huge})
    assert response.headers["content-type"].startswith("application/json")
    assert_400(response, "last_event_id", "9223372036854775807")


# --- the connection survives all of the above -------------------------------------------------
def test_keep_alive_connection_survived(client: httpx.Client) -> None:
    assert client.get("/api/tasks").status_code == 200


def test_server_log_has_no_unhandled_error(gateway: Server) -> None:
    log = gateway.log()
    assert "unhandled error" not in log
    assert "Exception in ASGI application" not in log
