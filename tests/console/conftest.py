"""One live ``aitp serve`` with seeded data and one headless Chromium for the console tests of this package.

Seeded through the public surface: projects and keys over REST, model calls
with the official openai SDK through the fake upstream, a generated test-case
task, a task waiting for review, and budgets sized against the spend so that
one sits in the 80% band and one is over its limit.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, sync_playwright

from agents.browser.pool.chromium import LAUNCH_FLAGS
from tests.agents.answers import CHECKOUT_EN, valid_answer
from tests.agents.conftest import task_config
from tests.conftest import Server, ServerFactory, gateway_config
from tests.fakes.llm_upstream import FakeUpstream, Reply

CHROMIUM = "/usr/bin/chromium"
# The runner's own launch flags, so tests drive Chromium exactly as the product does.
FLAGS = list(LAUNCH_FLAGS)
ARTIFACTS = Path(os.environ.get("AITP_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts"))
AXE = Path(__file__).parent / "vendor" / "axe.min.js"  # axe-core, vendored: see README "Console"
PROJECT = "console-a"
OTHER = "console-b"


@dataclass
class Seeded:
    server: Server
    admin: str  # project admin key of PROJECT
    member: str
    viewer: str
    other: str  # member key of OTHER
    member_id: str
    task_id: str  # a succeeded testcase.generate task of PROJECT
    review_task_id: str  # a system.sleep task waiting for review

    def api(self, path: str, as_key: str | None = None, **params: Any) -> Any:
        """GET ``path`` with ``as_key`` (default: the server admin key); ``params`` are the query."""
        response = self.server.api("GET", path, key=as_key, params=params)
        assert response.status_code == 200, response.text
        return response.json()


def _wait_task(
    server: Server, key: str, task_id: str, statuses: tuple[str, ...], timeout: float = 40
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        task = server.api("GET", f"/api/tasks/{task_id}", key=key).json()
        if task["status"] in statuses:
            return dict(task)
        assert time.monotonic() < deadline, task
        time.sleep(0.1)


def _calls(server: Server, key: str) -> None:
    client = openai.OpenAI(base_url=server.v1, api_key=key, max_retries=0)
    for model, text in [
        ("turbo", "hi"),
        ("turbo", "hello"),
        ("plus", "explain"),
        ("auto", "short"),
        ("auto", "tiny"),
        ("auto", "a long question " * 40),
    ]:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": text}])


def _key_id(server: Server, key: str) -> str:
    return str(server.api("GET", "/api/me", key=key).json()["key_id"])


@pytest.fixture(scope="package")
def seeded(fake: FakeUpstream, server_factory: ServerFactory) -> Seeded:
    # Browser runs open a page this test serves on 127.0.0.1; one browser is enough.
    browser = {"max_browsers": 1, "navigation_timeout_s": 5, "trace": False}
    fake.reset()  # a wider fixture than the autouse reset: drop what an earlier module scripted
    server = server_factory(
        {**gateway_config(fake), **task_config(), "outbound": {"allow_loopback": True}, "browser": browser},
        keep=True,
    )
    admin = server.new_key(PROJECT, role="admin")
    member = server.new_key(PROJECT, role="member")
    viewer = server.new_key(PROJECT, role="viewer")
    other = server.new_key(OTHER, role="member")
    member_id = _key_id(server, member)
    # Budgets first, so that the ledger counts the calls; their limits are set against the spend afterwards.
    budgets = [
        {"project": PROJECT, "name": "team day", "period": "day", "limit_usd": 100.0, "action": "alert"},
        {"project": PROJECT, "name": "member month", "scope": "key", "scope_id": member_id, "period": "month",
         "limit_usd": 100.0, "action": "alert"},
        {"project": PROJECT, "name": "tokens total", "period": "total", "limit_tokens": 10_000_000, "action": "block"},
    ]  # fmt: skip
    for spec in budgets:
        put = server.api("PUT", "/api/budgets", json=spec)
        assert put.status_code == 201, put.text
    _calls(server, member)
    _calls(server, other)
    fake.script("qwen-plus", Reply(content=valid_answer("en"), prompt_tokens=900, completion_tokens=400))
    created = server.api(
        "POST",
        "/api/tasks",
        key=member,
        json={"kind": "testcase.generate", "input": {"requirement": CHECKOUT_EN, "use_knowledge": False}},
    )
    assert created.status_code == 201, created.text
    task = _wait_task(server, member, created.json()["id"], ("succeeded", "failed"))
    assert task["status"] == "succeeded", task
    review = server.api("POST", "/api/tasks", key=member, json={"kind": "system.sleep", "input": {"review": True}})
    review_task = _wait_task(server, member, review.json()["id"], ("reviewing",))
    # Usage rows are written in batches: wait until every call (and the generation's) is counted.
    deadline = time.monotonic() + 10
    while server.api("GET", "/api/usage", key=member).json()["totals"]["requests"] < 7:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    used = {b["name"]: b["status"]["usd"]["used"] for b in server.api("GET", "/api/budgets/overview").json()["items"]
            if b["status"].get("usd")}  # fmt: skip
    # One budget in the 80% band, one over its limit.
    for spec, limit in ((budgets[0], used["team day"] / 0.85), (budgets[1], used["member month"] / 1.5)):
        put = server.api("PUT", "/api/budgets", json={**spec, "limit_usd": limit})
        assert put.status_code == 200, put.text
    # One more call crosses the thresholds under the new limits, which records alerts.
    openai.OpenAI(base_url=server.v1, api_key=member, max_retries=0).chat.completions.create(
        model="turbo", messages=[{"role": "user", "content": "one more"}]
    )
    deadline = time.monotonic() + 10
    while not server.api("GET", "/api/alerts", key=member).json()["items"]:
        assert time.monotonic() < deadline, "no budget alert was recorded"
        time.sleep(0.1)
    return Seeded(server, admin, member, viewer, other, member_id, task["id"], review_task["id"])


@pytest.fixture(scope="package")
def pw() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="package")
def chromium(pw: Playwright) -> Iterator[Browser]:
    browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
    yield browser
    browser.close()


@dataclass
class Console:
    """A page of the console with what it logged: tests assert that nothing went to the error console."""

    page: Page
    base: str
    errors: list[str]

    def open(self, view: str = "overview", query: str = "") -> None:
        self.page.goto(f"{self.base}/console/#/{view}{'?' + query if query else ''}")
        self.wait(view)

    def wait(self, view: str) -> None:
        self.page.wait_for_selector(f'main[data-ready="{view}"] section[data-view="{view}"]', timeout=15000)

    def go(self, view: str, query: str = "") -> None:
        target = f"#/{view}{'?' + query if query else ''}"
        if self.page.evaluate("location.hash") != target:
            self.page.evaluate("document.getElementById('main').removeAttribute('data-ready')")
            self.page.evaluate(f"location.hash = '{target}'")
        self.wait(view)

    def sign_in(self, key: str, view: str = "overview") -> None:
        self.page.goto(f"{self.base}/console/#/{view}")
        self.page.fill("#key", key)
        self.page.click("#signin")
        self.wait(view)

    def wait_text(self, selector: str, text: str, timeout: float = 15000) -> None:
        """Until the element's text contains ``text`` (a function, not a string: the page's CSP forbids eval)."""
        self.page.wait_for_function(
            "([sel, text]) => (document.querySelector(sel)?.textContent || '').includes(text)",
            arg=[selector, text],
            timeout=timeout,
        )

    def unexpected_errors(self, http: bool = False) -> list[str]:
        """Console errors; with ``http``, the browser's own log lines for refused requests are expected."""
        return [e for e in self.errors if not (http and e.startswith("Failed to load resource"))]

    def card(self, name: str) -> float | None:
        raw = self.page.get_attribute(f'[data-card="{name}"] .value', "data-value")
        return None if raw is None else float(raw)

    def axe(self) -> list[str]:
        """Serious and critical accessibility violations axe-core finds on the page as it is."""
        if not self.page.evaluate("typeof window.axe !== 'undefined'"):
            self.page.evaluate(AXE.read_text())
        found: list[str] = self.page.evaluate(
            """async () => (await axe.run(document, { resultTypes: ['violations'] })).violations
                .filter((v) => v.impact === 'serious' || v.impact === 'critical')
                .map((v) => `${v.id}: ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(' | ')}`)"""
        )
        return found

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"console-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def console(chromium: Browser, seeded: Seeded) -> Iterator[Console]:
    context = chromium.new_context(locale="en-US", timezone_id="Asia/Shanghai", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield Console(page, seeded.server.base_url, errors)
    context.close()
