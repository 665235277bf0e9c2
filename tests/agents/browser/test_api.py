"""The browser runner through a live ``aitp serve``: REST, artefacts with project isolation, specs, patch,
export (the exported file runs green under pytest), a plain-language run through the fake upstream, and MCP."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from defusedxml.ElementTree import fromstring
from mcp_types import BlobResourceContents

from tests.agents.browser.site import Site
from tests.agents.conftest import task_config, wait_task
from tests.conftest import Server, ServerFactory, gateway_config
from tests.fakes.llm_upstream import FakeUpstream, Reply
from tests.mcp_server.test_http import connect, structured, tool_error


@pytest.fixture(scope="module")
async def served(fake: FakeUpstream, server_factory: ServerFactory) -> Server:
    config = {
        **gateway_config(fake),
        **task_config(),
        "outbound": {"allow_loopback": True},
        "browser": {"max_browsers": 2, "navigation_timeout_s": 5, "snapshot_text_chars": 300},
    }
    return await asyncio.to_thread(server_factory, config)


def order_spec(site: Site, page: str = "/v1/order") -> dict[str, Any]:
    return {
        "name": "place an order",
        "base_url": site.url,
        "variables": {"page": page},
        "steps": [
            {"action": "goto", "url": "{{page}}"},
            {"action": "fill", "target": {"testid": "qty-input"}, "value": "2"},
            {"action": "click", "target": {"testid": "submit-order"}},
            {"action": "expect_text", "target": {"testid": "status"}, "value": "订单已提交"},
        ],
    }


def api(server: Server, key: str, method: str, path: str, expect: int, **kw: Any) -> Any:
    response = server.api(method, path, key=key, **kw)
    assert response.status_code == expect, response.text
    return response.json() if response.headers.get("content-type", "").startswith("application/json") else response


async def run_and_wait(server: Server, key: str, body: dict[str, Any]) -> dict[str, Any]:
    task = api(server, key, "POST", "/api/browser/runs", 202, json=body)
    done = await wait_task(server, key, task["id"], "succeeded", "failed", timeout=90)
    assert done["status"] == "succeeded", done["error"]
    return dict(api(server, key, "GET", f"/api/browser/runs/{task['id']}", 200))


async def test_stored_spec_runs_heals_is_patched_and_exports(served: Server, site: Site, tmp_path: Path) -> None:
    key = served.new_key(f"b-{secrets.token_hex(4)}")
    created = api(served, key, "POST", "/api/browser/specs", 201, json={"spec": order_spec(site)})
    first = await run_and_wait(served, key, {"spec_id": created["id"]})
    assert first["result"]["status"] == "passed"
    task_id = first["task"]["id"]
    run = first["result"]["runs"][0]
    assert "trace.zip" in run["artifacts"] and run["tiers"] == {"gold": 3, "silver": 0, "bronze": 0}
    junit = fromstring(api(served, key, "GET", f"/api/tasks/{task_id}/artifacts/junit.xml", 200).content)
    assert junit.tag == "testsuite" and junit.get("tests") == "1" and junit.get("failures") == "0"
    trace = api(served, key, "GET", f"/api/tasks/{task_id}/artifacts/trace.zip", 200)
    assert trace.content[:2] == b"PK" and trace.headers["content-disposition"].startswith("attachment")

    # Another project's key, and paths out of the run's directory, find nothing.
    other = served.new_key(f"b-{secrets.token_hex(4)}")
    api(served, other, "GET", f"/api/tasks/{task_id}/artifacts/junit.xml", 404)
    api(served, other, "GET", f"/api/browser/specs/{created['id']}", 404)
    for name in ("..%2F..%2Faitp.db", "../../aitp.db", "%2Fetc%2Fpasswd", "files/../../../aitp.db"):
        api(served, key, "GET", f"/api/tasks/{task_id}/artifacts/{name}", 404)

    # The page's test id changed: the run heals, suggests the fix, and the stored spec stays as it was.
    changed = {**order_spec(site, "/v2/order")}
    api(served, key, "PUT", f"/api/browser/specs/{created['id']}", 200, json={"spec": changed})
    healed = (await run_and_wait(served, key, {"spec_id": created["id"]}))["result"]
    assert healed["status"] == "passed" and healed["healed_steps"] == 1
    fix = healed["runs"][0]["heals"][0]
    assert fix["step"] == 2 and fix["new_locator"] == {"testid": "place-order"}
    stored = api(served, key, "GET", f"/api/browser/specs/{created['id']}", 200)
    assert stored["spec"]["steps"][2]["target"][0] == {"testid": "submit-order"}
    assert stored["heals"][0]["new_locator"] == {"testid": "place-order"}

    patched = api(served, key, "POST", f"/api/browser/specs/{created['id']}/patch", 200, json={"accept_heals": True})
    assert patched["version"] == 3
    assert patched["spec"]["steps"][2]["target"] == [{"testid": "place-order"}]
    clean = (await run_and_wait(served, key, {"spec_id": created["id"]}))["result"]
    assert clean["status"] == "passed" and clean["healed_steps"] == 0
    bad_patch = {"steps": [{"index": 9, "target": [{"css": "b"}]}]}
    api(served, key, "POST", f"/api/browser/specs/{created['id']}/patch", 400, json=bad_patch)

    exported = api(served, key, "GET", f"/api/browser/specs/{created['id']}/export?format=pytest", 200)
    name = exported.headers["content-disposition"].split('filename="')[1].rstrip('"')
    (tmp_path / name).write_text(exported.text)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    env = {
        **os.environ,
        "BASE_URL": site.url,
        "CHROMIUM_PATH": "/usr/bin/chromium",
        "CHROMIUM_ARGS": "--no-sandbox --disable-gpu",
    }
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "pytest", name, "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
    api(served, key, "GET", f"/api/browser/specs/{created['id']}/export?format=cypress", 400)


async def test_bad_input_names_the_field(served: Server, site: Site) -> None:
    key = served.new_key(f"b-{secrets.token_hex(4)}")
    error = api(served, key, "POST", "/api/browser/runs", 400, json={"spec": {"steps": [{"action": "click"}]}})
    assert "needs a target" in error["error"]["message"]
    error = api(served, key, "POST", "/api/browser/runs", 400, json={"description": "log in"})
    assert "url" in error["error"]["message"]
    viewer = served.new_key(f"b-{secrets.token_hex(4)}", role="viewer")
    api(served, viewer, "POST", "/api/browser/runs", 403, json={"spec": order_spec(site)})
    refused = api(served, key, "POST", "/api/browser/inspect", 400, json={"url": "file:///etc/passwd"})
    assert refused["error"]["code"] == "url_scheme_refused"


async def test_a_description_is_planned_through_the_gateway(served: Server, site: Site, fake: FakeUpstream) -> None:
    plan = {
        "steps": [
            {
                "action": "fill",
                "description": "输入数量",
                "locator": {"tier": "gold", "strategy": "testid", "value": "qty-input"},
                "value": "1",
            },
            {
                "action": "click",
                "description": "提交订单",
                "locator": {"tier": "gold", "strategy": "testid", "value": "submit-order"},
                "fallbacks": [{"tier": "silver", "strategy": "role", "value": "button", "name": "提交订单"}],
            },
            {
                "action": "expect_text",
                "description": "提示已提交",
                "locator": {"tier": "gold", "strategy": "testid", "value": "status"},
                "value": "订单已提交",
            },
        ],
        "finished": True,
        "assumptions": [],
    }
    for model in ("qwen-plus", "qwen-turbo"):
        fake.set_default(model, Reply(content=json.dumps(plan, ensure_ascii=False)))
    key = served.new_key(f"b-{secrets.token_hex(4)}")
    result = await run_and_wait(served, key, {"description": "下一个订单并确认已提交", "url": f"{site.url}/v1/order"})
    assert result["result"]["status"] == "passed", result["result"]
    generated = result["result"]["generated_spec"]
    assert [s["action"] for s in generated["spec"]["steps"]] == ["goto", "fill", "click", "expect_text"]
    asked = [r for r in fake.requests if "下一个订单" in json.dumps(r["messages"], ensure_ascii=False)]
    assert asked, "the plan was not asked through the gateway"
    page = json.dumps(asked[0]["messages"], ensure_ascii=False)
    assert "qty-input" in page and "提交订单" in page  # the snapshot of the start page went with it
    rows = await served.rows("SELECT prompt_name FROM usage_records WHERE task_id = :t", t=result["task"]["id"])
    assert {r["prompt_name"] for r in rows} == {"browser.plan"}


async def test_mcp_tools(served: Server, site: Site) -> None:
    key = served.new_key(f"b-{secrets.token_hex(4)}")
    async with connect(served, key) as client:
        listed = {t.name for t in (await client.list_tools()).tools}
        assert {"run_browser_test", "get_browser_results", "inspect_page", "export_browser_test"} <= listed
        page = structured(await client.call_tool("inspect_page", {"url": f"{site.url}/buttons"}))
        by_name = {e.get("name"): e for e in page["elements"]}
        assert by_name["Save"]["locator"] == {"testid": "save"} and by_name["Save"]["tier"] == "gold"
        assert by_name["Cancel"]["tier"] == "silver"
        failing = {**order_spec(site, "/v3/order")}
        ran = await client.call_tool("run_browser_test", {"spec": failing, "wait_seconds": 60})
        out = structured(ran)
        assert out["task"]["status"] == "succeeded" and out["status"] == "failed"
        step = out["runs"][0]["steps"][3]
        assert step["status"] == "failed" and step["error"]["code"] == "assertion_failed"
        links = [c for c in ran.content if c.type == "resource_link"]
        assert links and links[0].uri == f"task://{out['task']['id']}/screenshots/step-03-failed.png"
        image = (await client.read_resource(links[0].uri)).contents[0]
        assert isinstance(image, BlobResourceContents) and image.mime_type == "image/png"
        assert base64.b64decode(image.blob).startswith(b"\x89PNG")
        again = structured(await client.call_tool("get_browser_results", {"task_id": out["task"]["id"]}))
        assert again["runs"][0]["failed"] == 1
        other = served.new_key(f"b-{secrets.token_hex(4)}")
    async with connect(served, other) as stranger:
        refused = await stranger.call_tool("get_browser_results", {"task_id": out["task"]["id"]})
        assert "task_not_found" in tool_error(refused)


async def test_model_heals_when_no_fingerprint_exists(served: Server, site: Site, fake: FakeUpstream) -> None:
    answer = {"locator": {"strategy": "testid", "value": "place-order"}, "confidence": 0.9, "reason": "同一个提交按钮"}
    for model in ("qwen-plus", "qwen-turbo"):
        fake.set_default(model, Reply(content=json.dumps(answer, ensure_ascii=False)))
    key = served.new_key(f"b-{secrets.token_hex(4)}")
    spec = {**order_spec(site, "/v2/order"), "name": f"never passed {secrets.token_hex(3)}"}
    result = (await run_and_wait(served, key, {"spec": spec}))["result"]
    assert result["status"] == "passed" and result["healed_steps"] == 1, result["runs"][0]["steps"]
    heal = result["runs"][0]["heals"][0]
    assert heal["new_locator"] == {"testid": "place-order"} and heal["source"] == "model"
    assert heal["evidence"]["reason"] == "同一个提交按钮" and heal["confidence"] == 0.9
    # A model answer that finds nothing is refused: the step fails rather than passing on a guess.
    wrong = {"locator": {"strategy": "testid", "value": "no-such"}, "confidence": 0.99, "reason": "guess"}
    for model in ("qwen-plus", "qwen-turbo"):
        fake.set_default(model, Reply(content=json.dumps(wrong)))
    other = {**spec, "name": f"never passed {secrets.token_hex(3)}"}
    failed = (await run_and_wait(served, key, {"spec": other}))["result"]
    step = failed["runs"][0]["steps"][2]
    assert step["status"] == "failed" and "finds 0 elements" in step["error"]["message"]


async def test_a_suite_gives_one_junit_report(served: Server, site: Site) -> None:
    key = served.new_key(f"b-{secrets.token_hex(4)}")
    good = {"name": "中文页面", "base_url": site.url, "steps": [{"action": "goto", "url": "/zh"}]}
    bad = {**order_spec(site, "/v3/order"), "name": "changed order"}
    result = await run_and_wait(served, key, {"specs": [good, bad]})
    assert result["result"]["status"] == "failed"
    assert [r["status"] for r in result["result"]["runs"]] == ["passed", "failed"]
    assert "s02/step-03-failed.png" in result["result"]["runs"][1]["artifacts"]
    task_id = result["task"]["id"]
    shot = api(served, key, "GET", f"/api/tasks/{task_id}/artifacts/s02/step-03-failed.png", 200)
    assert shot.headers["content-type"] == "image/png"
    suite = fromstring(api(served, key, "GET", f"/api/tasks/{task_id}/artifacts/junit.xml", 200).content)
    assert suite.get("tests") == "2" and suite.get("failures") == "1"
    failure = suite.findall("testcase")[1].find("failure")
    assert failure is not None and "step 3 (expect_text)" in failure.get("message", "")
