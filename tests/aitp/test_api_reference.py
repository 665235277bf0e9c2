"""The API reference: every route is in /openapi.json, its schemas are the validating models', /docs renders it."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.routing import Mount, Route, WebSocketRoute

from agents.tasks.service import SubmitSpec
from agents.testcases.generate import GenerateInput
from aitp.app import create_app
from core.openapi import REF, ErrorResponse
from core.settings import Settings
from gateway.schemas import ChatRequest
from tests.agents.conftest import task_config
from tests.conftest import Server, ServerFactory


@pytest.fixture(scope="module")
async def server(server_factory: ServerFactory) -> Server:
    return await asyncio.to_thread(server_factory, task_config())


@pytest.fixture(scope="module")
def spec(server: Server) -> dict[str, Any]:
    response = httpx.get(f"{server.base_url}/openapi.json", timeout=30)  # no key: it describes, it does not act
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_every_route_of_the_app_is_documented(spec: dict[str, Any], tmp_path: Path) -> None:
    settings = Settings(admin_key="sk-aitp-test-admin-Zq8rT1vWm3Np7Ks2Lx9Bd4Hf6Gj0Yc5E", data_dir=tmp_path)
    app = create_app(settings)  # built, not started: only its routes are read
    wanted: set[tuple[str, str]] = set()
    for route in app.routes:
        if isinstance(route, WebSocketRoute):
            wanted.add(("get", route.path))
        elif isinstance(route, Route) and route.methods is None:  # an ASGI app (/mcp): any one method documented
            assert spec["paths"].get(route.path), f"{route.path} is not in the API reference"
        elif isinstance(route, Route):
            path = re.sub(r":\w+}", "}", route.path)  # {name:path} is {name} to a client
            wanted |= {(m.lower(), path) for m in route.methods or () if m != "HEAD"}
        elif isinstance(route, Mount) and route.path == "/console":
            continue  # the web console's static files: pages, not API
        else:
            raise AssertionError(f"a route of an unknown type: {route!r}; describe it in aitp/api_reference.py")
    documented = {(method, path) for path, ops in spec["paths"].items() for method in ops}
    missing = sorted(wanted - documented)
    assert not missing, f"routes missing from aitp/api_reference.py: {missing}"
    assert not documented - wanted - {("post", "/mcp")}, "documented routes the app does not have"
    assert len(wanted) >= 50


def test_schemas_are_the_validating_models(spec: dict[str, Any]) -> None:
    assert spec["openapi"] == "3.1.0"
    schemas = spec["components"]["schemas"]
    for model in (SubmitSpec, ChatRequest):
        own = model.model_json_schema(ref_template=REF)
        defs = own.pop("$defs", {})
        assert schemas[model.__name__] == own
        assert all(schemas[name] == sub for name, sub in defs.items())
    submit = spec["paths"]["/api/tasks"]["post"]
    assert submit["requestBody"]["content"]["application/json"]["schema"] == {"$ref": REF.format(model="SubmitSpec")}
    assert {"kind", "input", "idempotency_key"} <= set(schemas["SubmitSpec"]["properties"])
    chat = spec["paths"]["/v1/chat/completions"]["post"]
    assert chat["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/ChatRequest")
    assert "multipart/form-data" in spec["paths"]["/api/kb/documents"]["post"]["requestBody"]["content"]
    assert {p["name"] for p in spec["paths"]["/api/tasks"]["get"]["parameters"]} == {
        "status",
        "kind",
        "limit",
        "offset",
    }
    assert {p["name"] for p in spec["paths"]["/api/tasks/{task_id}"]["get"]["parameters"]} == {"task_id"}
    refs = set(re.findall(r'"\$ref": ?"#/components/schemas/(\w+)"', httpx.Response(200, json=spec).text))
    assert refs and refs <= set(schemas), f"dangling references: {refs - set(schemas)}"


def test_errors_have_the_documented_shape(server: Server) -> None:
    response = server.api("POST", "/api/tasks", json={"kind": "system.sleep", "inptu": {}})
    assert response.status_code == 400
    error = ErrorResponse.model_validate(response.json()).error
    assert error.param == "inptu" and "did you mean 'input'?" in error.message


def test_docs_page_is_self_contained(server: Server, spec: dict[str, Any]) -> None:
    page = httpx.get(f"{server.base_url}/docs", timeout=30)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "<script" not in html.lower() and not re.search(r"(src|href)=[\"']?https?:", html)
    for path in ("/api/tasks/kinds", "/v1/chat/completions", "/api/kb/search", "/api/tasks/{task_id}/testcases/review"):
        assert f"<code>{path}</code>" in html
    assert 'id="schema-SubmitSpec"' in html and "<code>idempotency_key</code>" in html
    assert html.count("<details") == sum(len(ops) for ops in spec["paths"].values())


def test_task_kinds_list_their_input_schemas(server: Server) -> None:
    key = server.new_key("default", role="viewer")  # reading what can be submitted needs no write role
    found = server.api("GET", "/api/tasks/kinds", key=key)
    assert found.status_code == 200, found.text
    kinds = {k["name"]: k for k in found.json()["items"]}
    assert {"testcase.generate", "automation.generate", "system.sleep"} <= set(kinds)
    generate = kinds["testcase.generate"]
    assert generate["input_schema"] == GenerateInput.model_json_schema()
    assert {"requirement", "document_id", "max_cases"} <= set(generate["input_schema"]["properties"])
    assert generate["description"]
    assert httpx.get(f"{server.base_url}/api/tasks/kinds", timeout=30).status_code == 401
