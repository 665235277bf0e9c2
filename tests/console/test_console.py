"""The console in headless Chromium against a live server: sign-in and roles, every view against the API, filters,
CSV, the review flow with IndexedDB drafts, languages, live updates, admin edits, accessibility (axe-core)."""

from __future__ import annotations

import csv
import io
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from playwright.sync_api import Route

from tests.agents.answers import CHECKOUT_EN, valid_answer
from tests.agents.browser.site import Site
from tests.console.conftest import OTHER, PROJECT, Console, Seeded, _wait_task
from tests.fakes.llm_upstream import FakeUpstream, Reply

VIEWS = ["overview", "spend", "budgets", "prompts", "workspace", "tasks", "monitor"]


def utc_today() -> str:
    return datetime.now(UTC).date().isoformat()


def test_sign_in_and_what_each_role_is_offered(console: Console, seeded: Seeded) -> None:
    page = console.page
    page.goto(f"{console.base}/console/")
    page.fill("#key", "sk-aitp-not-a-key")
    page.click("#signin")
    page.wait_for_function("() => document.getElementById('signin-error')?.textContent.length > 0")
    assert "key" in page.inner_text("#signin-error").lower()

    console.sign_in(seeded.viewer)
    nav = page.inner_text("#nav")
    assert "Requirements" not in nav and "Budgets" in nav
    assert page.inner_text("#project-name") == f"Project: {PROJECT}" and page.query_selector("#project") is None
    # The key lives in this tab's sessionStorage only.
    assert page.evaluate("sessionStorage.getItem('aitp.key')") == seeded.viewer
    assert page.evaluate("Object.values(localStorage).some((v) => v.includes('sk-aitp'))") is False
    console.go("budgets")
    assert page.query_selector("#budget-form") is None
    console.go("tasks", f"id={seeded.review_task_id}")
    assert page.query_selector("#r-approve") is None  # a viewer cannot review
    page.click("#signout")
    page.wait_for_selector("#key")

    console.sign_in(seeded.member, "budgets")
    assert "Requirements" in page.inner_text("#nav") and page.query_selector("#budget-form") is None
    page.click("#signout")
    console.sign_in(seeded.admin, "budgets")
    assert page.query_selector("#budget-form") is not None
    page.click("#signout")
    console.sign_in(seeded.server.admin_key)
    projects = page.eval_on_selector_all("#project option", "els => els.map((e) => e.value)")
    assert {"", "default", PROJECT, OTHER} <= set(projects)
    assert console.unexpected_errors(http=True) == []


def test_signing_out_while_a_view_loads_keeps_the_sign_in_form(console: Console, seeded: Seeded) -> None:
    page = console.page
    console.sign_in(seeded.member, "overview")
    # The tasks view's data is held back, so that signing out happens while that view is still being drawn.
    held: list[Route] = []

    def hold(route: Route) -> None:
        if held:
            route.continue_()  # the next key's own view is not held back
        else:
            held.append(route)

    page.route("**/api/tasks/stats*", hold)
    page.evaluate("location.hash = '#/tasks'")
    deadline = time.monotonic() + 10
    while not held:  # the route handler runs while Playwright waits on the page
        assert time.monotonic() < deadline, "the tasks view asked for no statistics"
        page.wait_for_timeout(20)
    # The view is now waiting for its data: sign out under it.
    page.click("#signout")
    page.fill("#key", seeded.viewer)
    with page.expect_response("**/api/tasks/stats*"):
        held[0].continue_()
    # The view drawn for the key that signed out must not replace the form the next key is typed into.
    page.click("#signin", timeout=5000)
    console.wait("tasks")
    assert page.inner_text("#whoami") == "viewer" and page.query_selector("#signout") is not None
    assert console.unexpected_errors() == []


def test_every_view_shows_what_the_api_says(console: Console, seeded: Seeded) -> None:
    page = console.page
    console.sign_in(seeded.member)
    problems: dict[str, list[str]] = {}
    for view in VIEWS:
        console.go(view)
        console.screenshot(f"member-{view}")
        problems[view] = console.axe()
        if view == "overview":
            usage = seeded.api("/api/usage", as_key=seeded.member, **{"from": utc_today()})
            stats = seeded.api("/api/tasks/stats", as_key=seeded.member)
            assert console.card("spend") == pytest.approx(usage["totals"]["cost_usd"])
            assert console.card("requests") == usage["totals"]["requests"]
            assert console.card("reviewing") == stats["by_status"].get("reviewing", 0) >= 1
            assert console.card("failed") == stats["by_status"].get("failed", 0)
            shown = page.eval_on_selector_all("#recent tr[data-task]", "rows => rows.map((r) => r.dataset.task)")
            assert shown == [t["id"] for t in seeded.api("/api/tasks", as_key=seeded.member, limit=10)["items"]]
        elif view == "spend":
            start = page.get_attribute('section[data-view="spend"]', "data-from")
            series = seeded.api("/api/usage/series", as_key=seeded.member, **{"from": start})
            savings = seeded.api("/api/usage/savings", as_key=seeded.member, **{"from": start})
            assert console.card("cost") == pytest.approx(series["totals"]["cost_usd"])
            assert console.card("tokens") == series["totals"]["tokens"]
            assert console.card("requests") == series["totals"]["requests"]
            assert console.card("turbo-share") == pytest.approx(savings["turbo_share"])
            assert console.card("saved") == pytest.approx(savings["saved_usd"])
            artefacts = seeded.api("/api/usage/artefacts", as_key=seeded.member, **{"from": start})
            per_case = artefacts["generation"]["cost_per_generated_case_usd"]
            assert per_case is not None and console.card("per-case") == pytest.approx(per_case)
        elif view == "budgets":
            overview = seeded.api("/api/budgets/overview", as_key=seeded.member)["items"]
            for budget in overview:
                for unit, state in budget["status"].items():
                    if not isinstance(state, dict) or "limit" not in state:
                        continue
                    row = f'tr[data-budget="{budget["id"]}"][data-unit="{unit}"]'
                    ratio = (state["used"] + state["reserved"]) / state["limit"]
                    assert float(page.get_attribute(f'{row} td[data-col="pct"]', "data-value")) == pytest.approx(ratio)
                    expected = "over" if ratio >= 1 else "warn" if ratio >= 0.8 else ""
                    assert (page.get_attribute(row, "class") or "") == expected, budget["name"]
            classes = page.eval_on_selector_all("tr[data-budget]", "rows => rows.map((r) => r.className)")
            assert "warn" in classes and "over" in classes
            alerts = seeded.api("/api/alerts", as_key=seeded.member, limit=20)["items"]
            assert alerts and page.eval_on_selector_all("table.alerts tbody tr", "rows => rows.length") == len(alerts)
        elif view == "prompts":
            stats = seeded.api("/api/prompts/testcase.generate/stats", as_key=seeded.member)
            page.select_option("#p-name", "testcase.generate")
            console.wait("prompts")
            for version in stats["versions"]:
                cell = f'td[data-version="{version["version"]}"][data-metric="requests"]'
                assert float(page.get_attribute(cell, "data-value")) == version["requests"]
        elif view == "tasks":
            total = seeded.api("/api/tasks", as_key=seeded.member)["total"]
            assert float(page.get_attribute("#task-total", "data-value")) == total
        elif view == "monitor":
            snap = seeded.api("/api/monitor", as_key=seeded.member)
            assert console.card("queue") == snap["tasks"]["queue_depth"]
            # The upstream's share per route, as the API figures it (nothing calls models meanwhile).
            for route in [*snap["routes"], snap["totals"]]:
                share = page.query_selector(f'tr[data-route="{route["route"]}"] td[data-col="upstream_share"]')
                assert share is not None, route
                raw = share.get_attribute("data-value")
                assert (None if raw is None else float(raw)) == route["upstream_share"], route
                if route["upstream_share"] is not None:  # a percentage in the page's language
                    shown = page.evaluate(
                        "v => new Intl.NumberFormat('en-US', {style: 'percent', maximumFractionDigits: 1}).format(v)",
                        route["upstream_share"],
                    )
                    assert share.text_content() == shown and shown.endswith("%")
            assert page.query_selector('[data-card="cpu"]') is None  # server figures are the server admin's
    assert problems == {view: [] for view in VIEWS}
    assert console.unexpected_errors() == []


def test_server_admin_picks_a_project(console: Console, seeded: Seeded) -> None:
    page = console.page
    console.sign_in(seeded.server.admin_key)
    everything = seeded.api("/api/usage", **{"from": utc_today()})
    assert console.card("requests") == everything["totals"]["requests"]
    # "All projects" is live for every project: a task of another project appears without a reload.
    page.wait_for_function("() => document.getElementById('live-state')?.textContent === 'live'")
    task = seeded.server.api("POST", "/api/tasks", key=seeded.other, json={"kind": "system.sleep", "input": {}}).json()
    page.wait_for_selector(f'#recent tr[data-task="{task["id"]}"]', timeout=15000)
    page.select_option("#project", OTHER)
    console.wait("overview")
    page.wait_for_function(f"() => document.querySelector('#project')?.value === '{OTHER}'")
    other = seeded.api("/api/usage", project=OTHER, **{"from": utc_today()})
    assert console.card("requests") == other["totals"]["requests"] < everything["totals"]["requests"]
    console.go("monitor")
    assert console.card("cpu") is not None and console.card("workers") == 1  # embedded: this process
    assert float(page.get_attribute('table.workers td[data-col="threads"]', "data-value") or 0) == 3
    console.wait_text('[data-card="workers"] .sub', "3 threads")
    console.screenshot("root-monitor")
    assert console.axe() == []
    assert console.unexpected_errors() == []


def test_spend_filters_and_csv_of_the_view(console: Console, seeded: Seeded) -> None:
    page = console.page
    console.sign_in(seeded.member, "spend")
    page.select_option("#f-range", "24h")
    page.wait_for_function("() => location.hash.includes('range=24h')")
    console.wait("spend")
    assert page.eval_on_selector("#f-bucket", "e => e.value") == "hour"
    page.select_option("#f-key", seeded.member_id)
    page.wait_for_function(f"() => location.hash.includes('key={seeded.member_id}')")
    console.wait("spend")
    start = page.get_attribute('section[data-view="spend"]', "data-from")
    mine = seeded.api("/api/usage/series", as_key=seeded.member, bucket="hour", key=seeded.member_id, **{"from": start})
    assert console.card("requests") == mine["totals"]["requests"] > 0
    page.select_option("#f-stack", "model")
    page.wait_for_function("() => location.hash.includes('stack=model')")
    console.wait("spend")
    rows = page.eval_on_selector_all("#usage-table tbody tr", "rows => rows.length")
    with page.expect_download() as download:
        page.click("#csv")
    text = download.value.path().read_text(encoding="utf-8-sig")
    lines = list(csv.DictReader(io.StringIO(text)))
    assert len(lines) == rows > 0 and list(lines[0]) == ["hour", "model", "requests", "tokens", "cost_usd"]
    by_model = seeded.api("/api/usage/series", as_key=seeded.member, bucket="hour", stack="model",
                          key=seeded.member_id, **{"from": start})  # fmt: skip
    assert sum(int(r["requests"]) for r in lines) == by_model["totals"]["requests"]
    assert sum(float(r["cost_usd"]) for r in lines) == pytest.approx(by_model["totals"]["cost_usd"])
    assert console.unexpected_errors() == []


def test_generate_review_and_drafts_across_reloads(console: Console, seeded: Seeded, fake: FakeUpstream) -> None:
    page = console.page
    fake.script(
        "qwen-plus", Reply(content=valid_answer("en", title_prefix="UI "), prompt_tokens=500, completion_tokens=300)
    )
    console.sign_in(seeded.member, "workspace")
    page.fill("#g-req", CHECKOUT_EN)
    page.uncheck("#g-kb")
    page.click("#g-start")
    page.wait_for_selector("#g-steps li", timeout=20000)
    page.wait_for_selector("tr[data-case]", timeout=30000)
    steps = page.eval_on_selector_all("#g-steps li", "els => els.map((e) => e.dataset.step)")
    assert "call_llm" in steps and "validate" in steps  # the steps arrived live, in order
    task_id = page.eval_on_selector("#g-head a", "a => a.textContent")
    ids = page.eval_on_selector_all("tr[data-case]", "rows => rows.map((r) => r.dataset.case)")
    assert len(ids) >= 2

    def status_of(case_id: str) -> str:
        return str(seeded.api(f"/api/testcases/{case_id}", as_key=seeded.member)["review_status"])

    page.click(f'[data-accept="{ids[0]}"]')
    console.wait_text(f'tr[data-case="{ids[0]}"] [data-col=status]', "accepted")
    assert status_of(ids[0]) == "accepted"
    page.check(f'[data-select="{ids[1]}"]')
    page.click("#rv-reject")
    console.wait_text(f'tr[data-case="{ids[1]}"] [data-col=status]', "rejected")
    assert status_of(ids[1]) == "rejected"

    # An edit not yet saved is a draft in IndexedDB; it survives a reload along with the watched task.
    page.click(f'[data-edit="{ids[0]}"]')
    page.fill("#e-title", "Draft title from the console")
    # The draft is written 300 ms after the last keystroke; wait until IndexedDB has it.
    count_drafts = """async () => {
        const db = await new Promise((ok) => {
            const r = indexedDB.open('aitp-console');
            r.onsuccess = () => ok(r.result);
        });
        const all = await new Promise((ok) => { const r = db.transaction('work').objectStore('work').getAll();
                                                r.onsuccess = () => ok(r.result); });
        db.close();
        return all.filter((rec) => rec.kind === 'draft').length;
    }"""
    deadline = time.monotonic() + 10
    while page.evaluate(count_drafts) == 0:
        assert time.monotonic() < deadline
        page.wait_for_timeout(100)
    page.reload()
    console.wait("workspace")
    page.wait_for_selector(f'[data-draft="{ids[0]}"]', timeout=20000)
    assert page.eval_on_selector("#g-head a", "a => a.textContent") == task_id
    assert "100%" in page.inner_text("#g-head")  # the replayed log does not wind the finished task back
    assert page.query_selector(f'[data-conflict="{ids[0]}"]') is None
    # Someone else changes the case on the server: the draft is reported, not applied.
    changed = seeded.server.api("POST", f"/api/testcases/{ids[0]}/review", key=seeded.admin,
                                json={"action": "edit", "changes": {"title": "Changed on the server"}})  # fmt: skip
    assert changed.status_code == 200, changed.text
    page.reload()
    console.wait("workspace")
    page.wait_for_selector(f'[data-conflict="{ids[0]}"]', timeout=20000)
    assert seeded.api(f"/api/testcases/{ids[0]}", as_key=seeded.member)["title"] == "Changed on the server"
    console.screenshot("member-workspace-review")
    assert console.axe() == []
    # Opening the draft and saving it is the reviewer's choice.
    page.click(f'[data-conflict="{ids[0]}"] button')
    assert page.input_value("#e-title") == "Draft title from the console"
    page.click("#e-save")
    page.wait_for_selector(f'[data-conflict="{ids[0]}"]', state="detached")
    assert seeded.api(f"/api/testcases/{ids[0]}", as_key=seeded.member)["title"] == "Draft title from the console"

    with page.expect_download() as download:
        page.click('[data-export="csv"]')
    assert "Draft title from the console" in download.value.path().read_text(encoding="utf-8-sig")

    # Another key of the same project does not see this key's watched task or drafts.
    page.click("#signout")
    console.sign_in(seeded.admin, "workspace")
    page.wait_for_selector("#g-start")
    assert page.query_selector("#g-head") is None
    assert console.unexpected_errors() == []


def test_both_languages_and_remembered(console: Console, seeded: Seeded) -> None:
    page = console.page
    console.sign_in(seeded.member)
    page.select_option("#lang", "zh")
    page.wait_for_function("() => document.documentElement.lang === 'zh-CN'")
    console.wait("overview")
    assert "总览" in page.inner_text("#nav") and "今日花费" in page.inner_text("#cards")
    assert "Asia/Shanghai" in page.inner_text("#foot")
    value = console.card("spend")
    shown = page.inner_text('[data-card="spend"] .value')
    expected = page.evaluate(
        "(v) => new Intl.NumberFormat('zh-CN', {style: 'currency', currency: 'USD', minimumFractionDigits: 2,"
        " maximumFractionDigits: v < 1 ? 6 : 2}).format(v)",
        value,
    )
    assert shown == expected
    for view in VIEWS:
        console.go(view)
        console.screenshot(f"zh-{view}")
    page.reload()  # the language is remembered, and the key still signs this tab in
    console.wait("monitor")
    assert page.evaluate("localStorage.getItem('aitp.lang')") == "zh" and "监控" in page.inner_text("h1")
    page.select_option("#lang", "en")
    page.wait_for_function("() => document.documentElement.lang === 'en'")
    assert console.unexpected_errors() == []


def test_tasks_review_queue_and_event_log(console: Console, seeded: Seeded) -> None:
    page = console.page
    console.sign_in(seeded.member, "tasks")
    page.wait_for_selector(f'#review-queue tr[data-task="{seeded.review_task_id}"]')
    page.select_option("#t-status", "reviewing")
    page.wait_for_function("() => location.hash.includes('status=reviewing')")
    console.wait("tasks")
    listed = page.eval_on_selector_all("#task-list tr[data-task]", "rows => rows.map((r) => r.dataset.task)")
    api = seeded.api("/api/tasks", as_key=seeded.member, status="reviewing")
    assert listed == [t["id"] for t in api["items"]]
    page.click(f'#review-queue a[href="#/tasks?id={seeded.review_task_id}"]')
    page.wait_for_selector("#r-approve")
    page.wait_for_function("() => document.getElementById('event-log')?.textContent.includes('task_need_review')")
    page.fill("#r-feedback", "looks right")
    page.click("#r-approve")
    deadline = time.monotonic() + 20
    while seeded.api(f"/api/tasks/{seeded.review_task_id}", as_key=seeded.member)["status"] != "succeeded":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    page.wait_for_function("() => document.getElementById('event-log')?.textContent.includes('task_succeeded')")
    console.screenshot("member-task-detail")
    # A task that failed shows its error with the hint.
    failing = seeded.server.api("POST", "/api/tasks", key=seeded.member,
                                json={"kind": "system.sleep", "input": {"fail_times": 10}}).json()  # fmt: skip
    deadline = time.monotonic() + 30
    while (task := seeded.api(f"/api/tasks/{failing['id']}", as_key=seeded.member))["status"] != "failed":
        assert time.monotonic() < deadline, task
        time.sleep(0.2)
    console.go("tasks", f"id={failing['id']}")
    console.wait_text("#task-error", task["error"]["hint"])
    assert task["error"]["message"] in page.inner_text("#task-error")
    assert console.unexpected_errors() == []


def test_overview_is_live_without_polling(console: Console, seeded: Seeded) -> None:
    page = console.page
    console.sign_in(seeded.member)
    page.wait_for_function("() => document.getElementById('live-state')?.textContent === 'live'")
    calls: list[str] = []
    page.on("request", lambda r: calls.append(r.url) if "/api/" in r.url else None)
    page.wait_for_timeout(2500)
    assert calls == []  # idle: no polling
    task = seeded.server.api("POST", "/api/tasks", key=seeded.member, json={"kind": "system.sleep", "input": {}})
    task_id = task.json()["id"]
    page.wait_for_selector(f'#recent tr[data-task="{task_id}"]', timeout=15000)
    console.wait_text(f'#recent tr[data-task="{task_id}"] [data-col=status]', "succeeded")
    assert len(calls) < 20  # a few debounced re-reads, not a storm
    assert console.unexpected_errors() == []


def test_budget_edits_show_the_api_messages_at_the_field(console: Console, seeded: Seeded) -> None:
    page = console.page
    console.sign_in(seeded.admin, "budgets")
    page.fill("#b-name", "per user")
    page.select_option("#b-scope", "user")
    page.fill("#b-limit_usd", "5")
    page.click("#b-save")
    page.wait_for_function("() => document.getElementById('b-scope_id-error').textContent.includes('scope_id')")
    assert page.get_attribute("#b-scope_id", "aria-invalid") == "true"
    page.fill("#b-scope_id", "alice")
    page.fill("#b-limit_usd", "-1")
    page.click("#b-save")
    page.wait_for_function("() => document.getElementById('b-limit_usd-error').textContent.length > 0")
    page.fill("#b-limit_usd", "5")
    page.click("#b-save")
    page.wait_for_selector("text=per user")
    made = [b for b in seeded.api("/api/budgets", as_key=seeded.admin)["items"] if b["name"] == "per user"]
    assert made and made[0]["scope_id"] == "alice" and made[0]["limit_usd"] == 5
    console.screenshot("admin-budgets")
    assert console.unexpected_errors(http=True) == []


def test_prompt_canary_for_the_server_admin(console: Console, seeded: Seeded) -> None:
    page = console.page
    console.sign_in(seeded.server.admin_key, "prompts")
    page.select_option("#p-name", "testcase.generate")
    console.wait("prompts")
    version = page.eval_on_selector("#p-version", "e => e.value")
    page.fill("#p-weight", "0.25")
    page.click("#p-canary")
    page.wait_for_selector("#p-uncanary")
    labels = seeded.api("/api/prompts/testcase.generate")["labels"]
    canary = next(label for label in labels if label["label"] == "canary")
    assert canary["version"] == int(version) and canary["weight"] == 0.25
    console.screenshot("root-prompts")
    page.click("#p-uncanary")
    page.wait_for_selector("#p-uncanary", state="detached")
    assert not [label for label in seeded.api("/api/prompts/testcase.generate")["labels"] if label["label"] == "canary"]
    assert console.unexpected_errors() == []


def test_interrupted_upload_is_kept_and_sent_again(console: Console, seeded: Seeded) -> None:
    page = console.page
    console.sign_in(seeded.member, "workspace")
    # The network fails mid-upload: the document stays in IndexedDB, and a reload offers to send it again.
    page.route(
        "**/api/kb/documents", lambda route: route.abort() if route.request.method == "POST" else route.continue_()
    )
    page.fill("#kb-text", "Refunds are issued within 14 days of a return being received.")
    page.fill("#kb-source", "refunds.md")
    page.click("#kb-add")
    page.wait_for_selector("#kb-pending [data-upload]")
    page.unroute("**/api/kb/documents")
    page.reload()
    console.wait("workspace")
    console.wait_text("#kb-pending", "refunds.md")
    page.click("#kb-pending [data-upload] button")
    page.wait_for_selector("#kb-pending [data-upload]", state="detached", timeout=60000)
    console.wait_text("#kb-docs", "refunds.md")
    sources = [d["source"] for d in seeded.api("/api/kb/documents", as_key=seeded.member)["items"]]
    assert "refunds.md" in sources
    assert console.unexpected_errors(http=True) == []


def _browser_run(seeded: Seeded, spec_id: str) -> dict[str, Any]:
    task = seeded.server.api("POST", "/api/browser/runs", key=seeded.member, json={"spec_id": spec_id})
    assert task.status_code == 202, task.text
    done = _wait_task(seeded.server, seeded.member, task.json()["id"], ("succeeded", "failed"), timeout=60)
    assert done["status"] == "succeeded", done["error"]
    return dict(seeded.api(f"/api/browser/runs/{done['id']}", as_key=seeded.member))


def test_browser_run_steps_heals_screenshots_and_the_pool(console: Console, seeded: Seeded) -> None:
    page = console.page
    site = Site().start()
    try:
        steps = [
            {"action": "goto", "url": "{{page}}"},
            {"action": "fill", "target": {"testid": "qty-input"}, "value": "2"},
            {"action": "click", "target": {"testid": "submit-order"}, "screenshot": True},
            {"action": "expect_text", "target": {"testid": "status"}, "value": "订单已提交"},
        ]
        spec = {"name": "order", "base_url": site.url, "variables": {"page": "/v1/order"}, "steps": steps}
        created = seeded.server.api("POST", "/api/browser/specs", key=seeded.member, json={"spec": spec})
        assert created.status_code == 201, created.text
        spec_id = created.json()["id"]
        _browser_run(seeded, spec_id)  # records the elements' fingerprints the next run heals from
        # The page's test id changed (a heal), and a last check fails (an error with its suggested fix).
        failing = {"action": "expect_text", "target": {"testid": "status"}, "value": "never shown", "timeout_s": 0.5}
        changed = {**spec, "variables": {"page": "/v2/order"}, "steps": [*steps, failing]}
        put = seeded.server.api("PUT", f"/api/browser/specs/{spec_id}", key=seeded.member, json={"spec": changed})
        assert put.status_code == 200, put.text
        found = _browser_run(seeded, spec_id)
    finally:
        site.stop()
    run = found["result"]["runs"][0]
    assert [s["status"] for s in run["steps"]] == ["passed", "passed", "healed", "passed", "failed"]

    console.sign_in(seeded.member, "tasks")
    drawn: list[str] = []
    page.on("request", lambda r: drawn.append(r.url) if "/api/browser/runs/" in r.url else None)
    console.go("tasks", f"id={found['task']['id']}")
    page.wait_for_selector("#browser-run tr[data-step]")
    rows = page.eval_on_selector_all(
        "#browser-run tr[data-step]",
        """rows => rows.map((r) => ({
            index: Number(r.dataset.step),
            status: r.querySelector('[data-col="status"]').dataset.value,
            tier: r.querySelector('[data-col="tier"]').dataset.value ?? null,
            duration_ms: Number(r.querySelector('[data-col="duration"]').dataset.value),
            confidence: r.querySelector('.heal')?.dataset.confidence ?? null,
            detail: r.querySelector('[data-col="detail"]').textContent }))""",
    )
    assert [{k: r[k] for k in ("index", "status", "tier", "duration_ms")} for r in rows] == [
        {k: s.get(k) for k in ("index", "status", "tier", "duration_ms")} for s in run["steps"]
    ]
    heal = run["heals"][0]
    healed_row = rows[heal["step"]]["detail"]
    assert 'testid="submit-order"' in healed_row and 'testid="place-order"' in healed_row
    assert float(rows[heal["step"]]["confidence"]) == heal["confidence"] and "confidence" in healed_row
    error = run["steps"][-1]["error"]
    assert error["message"] in rows[-1]["detail"] and error["suggestion"] in rows[-1]["detail"]
    # The screenshot arrives through fetch with the key, as a blob: URL, and is a decoded image.
    shot = run["steps"][2]["screenshot"]
    assert shot in run["artifacts"]
    img = f'#browser-run img.shot[data-name="{shot}"]'
    page.wait_for_function(
        "(sel) => { const i = document.querySelector(sel); return i?.src.startsWith('blob:') && i.naturalWidth > 0; }",
        arg=img,
    )
    # It is the artefact itself: the decoded size equals the PNG's own (IHDR width and height).
    shown = page.eval_on_selector(img, "(i) => [i.naturalWidth, i.naturalHeight]")
    png = seeded.server.api("GET", f"/api/tasks/{found['task']['id']}/artifacts/{shot}", key=seeded.member).content
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert shown == [int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")]
    # A finished run is drawn once: the final event replayed in its log does not draw it again.
    console.wait_text("#event-log", "task_succeeded")
    assert len(drawn) == 1, drawn
    console.screenshot("member-browser-run")
    assert console.axe() == []
    page.select_option("#lang", "zh")  # every label has its Chinese (a missing one is a console error)
    console.wait_text("#browser-run", "浏览器运行")
    console.wait_text(f'#browser-run tr[data-step="{heal["step"]}"]', "置信度")
    page.select_option("#lang", "en")
    page.wait_for_function("() => document.documentElement.lang === 'en'")
    assert console.unexpected_errors() == []

    # The monitor shows the browser pool's use as GET /api/monitor reports it (server admin only).
    page.click("#signout")
    page.wait_for_selector("#key")
    console.sign_in(seeded.server.admin_key, "monitor")
    pool = seeded.api("/api/monitor")["system"]["browser_pool"]
    assert pool["cap"] == 1 and pool["queue_cap"] == 100 and pool["browsers"] == 1
    assert console.card("pool-in-use") == pool["in_use"] and console.card("pool-queue") == pool["queued"]
    console.wait_text('[data-card="pool-in-use"] .sub', "of 1 runs at once")
    page.select_option("#lang", "zh")
    console.wait_text('[data-card="pool-in-use"] .sub', "同时最多 1 个运行")
    assert console.unexpected_errors() == []
