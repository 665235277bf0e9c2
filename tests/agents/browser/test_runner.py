"""The runner against real Chromium and the fixture site: tiers, late content, CJK, healing, timeouts, SSRF."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
from typing import Any

import pytest

from agents.browser.spec import parse_spec
from tests.agents.browser.conftest import Rig
from tests.agents.browser.site import Site


async def run(rig: Rig, spec: dict[str, Any], key: str | None = None) -> dict[str, Any]:
    parsed = parse_spec(spec)
    name = key or secrets.token_hex(6)
    return await rig.runner.run("p", parsed, name, rig.tmp / "runs" / name, rig.healer())


def steps_of(result: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(s["status"], s.get("tier")) for s in result["steps"]]


async def test_tiers_with_and_without_test_ids(rig: Rig, site: Site) -> None:
    result = await run(
        rig,
        {
            "base_url": site.url,
            "steps": [
                {"action": "goto", "url": "/buttons"},
                {"action": "click", "target": {"testid": "save"}},
                {"action": "expect_text", "target": {"testid": "status"}, "value": "Save"},
                # No test id: the gold alternative misses, silver hits.
                {"action": "click", "target": [{"testid": "cancel"}, {"role": "button", "name": "Cancel"}]},
                {"action": "expect_text", "target": {"css": "#status"}, "value": "Cancel"},
                {"action": "fill", "target": {"label": "Email"}, "value": "a@b.c"},
                {"action": "expect_value", "target": {"css": "input[name=email]"}, "value": "a@b.c"},
                {"action": "fill", "target": {"placeholder": "Search here"}, "value": "q"},
                {"action": "select", "target": {"testid": "size"}, "value": "Large"},
                {"action": "expect_value", "target": {"testid": "size"}, "value": "l"},
            ],
        },
    )
    assert result["status"] == "passed", result
    assert [t for _, t in steps_of(result)] == [
        None, "gold", "gold", "silver", "bronze", "silver", "bronze", "silver", "gold", "gold"
    ]  # fmt: skip
    assert result["tiers"] == {"gold": 4, "silver": 3, "bronze": 2}
    assert rig.metric("aitp_locator_resolutions_total", tier="silver", outcome="hit") >= 3


async def test_late_content_is_waited_for_within_the_budget(rig: Rig, site: Site) -> None:
    result = await run(
        rig,
        {
            "base_url": site.url,
            "steps": [{"action": "goto", "url": "/late"}, {"action": "click", "target": {"testid": "late-btn"}}],
        },
    )
    assert steps_of(result) == [("passed", None), ("passed", "gold")]
    assert result["steps"][1]["duration_ms"] >= 300  # it was not there at first
    short = await run(
        rig,
        {
            "base_url": site.url,
            "steps": [
                {"action": "goto", "url": "/late"},
                {"action": "click", "target": {"testid": "late-btn"}, "timeout_s": 0.3},
                {"action": "click", "target": {"testid": "late-btn"}},
            ],
        },
    )
    assert [s for s, _ in steps_of(short)] == ["passed", "failed", "skipped"]
    error = short["steps"][1]["error"]
    assert error["code"] == "target_not_found" and "timeout_s" in error["suggestion"]
    assert short["steps"][1]["screenshot"] == "step-01-failed.png"


def _cjk_font_installed() -> bool:
    out = subprocess.run(["fc-list", ":lang=zh"], capture_output=True, text=True, check=False).stdout
    return bool(out.strip())


async def test_chinese_text_and_screenshots(rig: Rig, site: Site) -> None:
    key = secrets.token_hex(6)
    result = await run(
        rig,
        {
            "base_url": site.url,
            "steps": [
                {"action": "goto", "url": "/zh"},
                {"action": "expect_text", "target": {"testid": "intro"}, "value": "支持中文截图"},
                {"action": "click", "target": {"role": "button", "name": "开始测试"}, "screenshot": True},
                {"action": "screenshot"},
            ],
        },
        key,
    )
    assert result["status"] == "passed", result
    assert result["artifacts"] == ["step-02-shot.png", "step-03-shot.png"]
    png = (rig.tmp / "runs" / key / "step-03-shot.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 2000
    assert _cjk_font_installed(), "install fonts-wqy-microhei: Chinese text renders as boxes without a CJK font"


async def test_changed_test_id_is_healed_with_the_right_fix_and_cached(rig: Rig, site: Site) -> None:
    key = secrets.token_hex(6)

    def order(version: str) -> dict[str, Any]:
        return {
            "name": "place an order",
            "base_url": site.url,
            "steps": [
                {"action": "goto", "url": f"/{version}/order"},
                {"action": "fill", "target": {"testid": "qty-input"}, "value": "2"},
                {"action": "click", "target": {"testid": "submit-order"}},
                {"action": "expect_text", "target": {"testid": "status"}, "value": "订单已提交"},
            ],
        }

    first = await run(rig, order("v1"), key)
    assert first["status"] == "passed" and first["healed"] == 0
    second = await run(rig, order("v2"), key)
    assert second["status"] == "passed", second
    step = second["steps"][2]
    assert step["status"] == "healed"
    heal = step["heal"]
    assert heal["old_locator"] == {"testid": "submit-order"} and heal["old_tier"] == "gold"
    assert heal["new_locator"] == {"testid": "place-order"} and heal["new_tier"] == "gold"
    assert heal["tier_drop"] is False and heal["confidence"] >= 0.6
    assert heal["evidence"]["changed"] == {"testid": ["submit-order", "place-order"]}
    assert second["heals"] == [{"step": 2, **heal}]
    # The next run uses the cached heal at once, without scoring again; the spec itself is unchanged.
    third = await run(rig, order("v2"), key)
    assert third["steps"][2]["status"] == "healed" and third["steps"][2]["heal"]["source"] == "cache"
    assert rig.metric("aitp_browser_heals_total", outcome="healed") >= 1
    assert rig.metric("aitp_browser_heals_total", outcome="cached") >= 1


async def test_changed_meaning_fails_and_is_not_healed(rig: Rig, site: Site) -> None:
    key = secrets.token_hex(6)
    spec = {
        "base_url": site.url,
        "steps": [
            {"action": "goto", "url": "/v1/order"},
            {"action": "click", "target": {"testid": "submit-order"}},
            {"action": "expect_text", "target": {"testid": "status"}, "value": "订单已提交"},
        ],
    }
    assert (await run(rig, spec, key))["status"] == "passed"
    # v3 keeps the test id but the button now cancels the order: the check must fail.
    changed = await run(rig, {**spec, "steps": [{"action": "goto", "url": "/v3/order"}, *spec["steps"][1:]]}, key)
    assert changed["status"] == "failed" and changed["healed"] == 0
    failed = changed["steps"][2]
    assert failed["status"] == "failed" and "heal" not in failed
    assert failed["error"]["code"] == "assertion_failed"
    assert "订单已取消" in failed["error"]["message"] and "never heals" in failed["error"]["suggestion"]
    # A click whose target changed meaning is not healed either: the best candidate differs too much.
    meaning = await run(
        rig,
        {
            "base_url": site.url,
            "steps": [
                {"action": "goto", "url": "/v1/order"},
                {"action": "click", "target": {"role": "button", "name": "提交订单"}},
            ],
        },
        key + "b",
    )
    assert meaning["status"] == "passed"
    gone = await run(
        rig,
        {
            "base_url": site.url,
            "steps": [
                {"action": "goto", "url": "/v3/order"},
                {"action": "click", "target": {"role": "button", "name": "提交订单"}, "timeout_s": 0.5},
            ],
        },
        key + "b",
    )
    assert gone["steps"][1]["status"] == "failed", gone["steps"][1]
    assert gone["steps"][1]["error"]["code"] == "target_not_found"


async def test_a_page_that_never_loads_times_out(rig: Rig, site: Site) -> None:
    steps = [{"action": "goto", "url": "/hang", "timeout_s": 1}, {"action": "screenshot"}]
    result = await run(rig, {"base_url": site.url, "steps": steps})
    assert [s for s, _ in steps_of(result)] == ["failed", "skipped"]
    assert result["steps"][0]["error"]["code"] == "navigation_timeout"
    assert result["steps"][0]["duration_ms"] < 5000


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("http://not-allowed.example/", "url_host_not_allowed"),
        ("file:///etc/passwd", "url_scheme_refused"),
        ("javascript:alert(1)", "url_scheme_refused"),
        ("data:text/html,<p>x</p>", "url_scheme_refused"),
        ("chrome://settings", "url_scheme_refused"),
        ("http://169.254.169.254/latest/meta-data/", "url_address_refused"),
    ],
)
async def test_navigation_is_refused_off_the_policy(rig: Rig, url: str, code: str) -> None:
    result = await run(rig, {"steps": [{"action": "goto", "url": url}]})
    error = result["steps"][0]["error"]
    assert result["status"] == "failed" and error["code"] == code, error
    assert "outbound" in error["suggestion"]


@pytest.mark.parametrize(
    ("path", "code"), [("/go/metadata", "url_address_refused"), ("/go/elsewhere", "url_host_not_allowed")]
)
async def test_redirects_off_the_allowlist_are_refused(rig: Rig, site: Site, path: str, code: str) -> None:
    result = await run(rig, {"base_url": site.url, "steps": [{"action": "goto", "url": path}]})
    assert result["status"] == "failed"
    assert result["steps"][0]["error"]["code"] == code
    assert result["blocked_requests"][0]["url"].startswith(("http://169.254.169.254", "http://not-allowed.example"))
    allowed = await run(rig, {"base_url": site.url, "steps": [{"action": "goto", "url": "/go/zh"}]})
    assert allowed["status"] == "passed"


async def test_metadata_sub_requests_are_blocked(rig: Rig, site: Site) -> None:
    result = await run(
        rig,
        {
            "base_url": site.url,
            "steps": [
                {"action": "goto", "url": "/metadata"},
                {"action": "expect_visible", "target": {"testid": "ok"}},
            ],
        },
    )
    assert result["status"] == "passed"
    blocked = {b["url"] for b in result["blocked_requests"]}
    assert any(u.startswith("http://169.254.169.254/") for u in blocked), result["blocked_requests"]
    # A metadata address is refused as such, whatever the allowlist says.
    assert {b["code"] for b in result["blocked_requests"]} == {"url_address_refused"}


async def test_secrets_are_masked_and_files_stay_in_the_run_directory(rig: Rig, site: Site) -> None:
    key = secrets.token_hex(6)
    result = await run(
        rig,
        {
            "base_url": site.url,
            "secrets": {"password": "hunter2-secret"},
            "files": {"notes.txt": "上传的内容"},
            "steps": [
                {"action": "goto", "url": "/buttons"},
                {"action": "fill", "target": {"label": "Email"}, "value": "{{password}}"},
                {"action": "expect_value", "target": {"label": "Email"}, "value": "wrong {{password}}"},
            ],
        },
        key,
    )
    text = str(result)
    assert "hunter2-secret" not in text and "***" in text
    assert result["trace"] == "off: the spec has secrets"
    uploads = await run(
        rig,
        {
            "base_url": site.url,
            "files": {"notes.txt": "上传的内容"},
            "steps": [
                {"action": "goto", "url": "/upload"},
                {"action": "upload", "target": {"testid": "file"}, "value": "notes.txt"},
                {"action": "expect_text", "target": {"testid": "status"}, "value": "notes.txt"},
                {"action": "upload", "target": {"testid": "file"}, "value": "../../aitp.db"},
            ],
        },
    )
    assert [s for s, _ in steps_of(uploads)] == ["passed", "passed", "passed", "failed"]
    assert uploads["steps"][3]["error"]["code"] == "upload_refused"
    downloads = await run(
        rig,
        {
            "base_url": site.url,
            "steps": [{"action": "goto", "url": "/download"}, {"action": "click", "target": {"testid": "dl"}}],
        },
        key + "d",
    )
    assert "downloads/report.txt" in downloads["artifacts"]
    assert (rig.tmp / "runs" / (key + "d") / "downloads" / "report.txt").read_text() == "报告内容\n"


async def test_a_crashed_browser_is_recycled(rig: Rig, site: Site) -> None:
    spec = {"base_url": site.url, "steps": [{"action": "goto", "url": "/zh"}]}
    assert (await run(rig, spec))["status"] == "passed"
    before = rig.pool.stats().recycled
    pids = rig.pool.browser_pids()
    assert pids
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    for _ in range(50):
        if rig.pool.stats().recycled > before:
            break
        await asyncio.sleep(0.1)
    assert rig.pool.stats().recycled > before
    assert rig.metric("aitp_browser_recycled_total", reason="crash") >= 1
    again = await run(rig, spec)
    assert again["status"] == "passed"
    assert set(rig.pool.browser_pids()).isdisjoint(pids)
