"""A spec as a standalone pytest-playwright file: it runs without aitp.

Each step's locators keep their tier order: ``find`` tries them in turn
within the step's budget, like the runner. Assertions use Playwright's
``expect``. Variables are written in; secrets are read from the environment
(``AITP_SECRET_<NAME>``), never written into the file.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .spec import Spec, Step

_HEADER = '''"""{name}: exported from aitp.

Locators keep their tier order: gold test id, silver role/label/text, bronze CSS/XPath.

Run with pytest-playwright:  BASE_URL={base_url} pytest {filename}
Environment: BASE_URL (where the site runs), CHROMIUM_PATH and CHROMIUM_ARGS (a system Chromium),
AITP_SECRET_<NAME> (the spec's secrets).
"""

from __future__ import annotations

import os
import re
import time
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect

BASE_URL = os.environ.get("BASE_URL", {base_url!r}).rstrip("/")
STEP_BUDGET_MS = {budget_ms}
VARIABLES: dict[str, str] = {variables}
SECRETS = {{name: os.environ.get(f"AITP_SECRET_{{name.upper()}}", "") for name in {secret_names!r}}}


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    extra: dict[str, Any] = {{}}
    if os.environ.get("CHROMIUM_PATH"):
        extra["executable_path"] = os.environ["CHROMIUM_PATH"]
    if os.environ.get("CHROMIUM_ARGS"):
        extra["args"] = os.environ["CHROMIUM_ARGS"].split()
    return {{**browser_type_launch_args, **extra}}


def value(text: str) -> str:
    names = {{**VARIABLES, **SECRETS}}
    return re.sub(r"\\{{\\{{\\s*(\\w+)\\s*\\}}\\}}", lambda m: names.get(m.group(1), m.group(0)), text)


def url(path: str) -> str:
    return path if re.match(r"^https?://", path) else BASE_URL + "/" + path.lstrip("/")


def build(page: Page, how: dict[str, Any]) -> Locator:
    exact = bool(how.get("exact"))
    if "testid" in how:
        return page.get_by_test_id(how["testid"])
    if "role" in how:
        return page.get_by_role(how["role"], name=how.get("name"), exact=exact if how.get("name") else None)
    if "label" in how:
        return page.get_by_label(how["label"], exact=exact)
    if "placeholder" in how:
        return page.get_by_placeholder(how["placeholder"], exact=exact)
    if "text" in how:
        return page.get_by_text(how["text"], exact=exact)
    if "css" in how:
        return page.locator(how["css"])
    return page.locator("xpath=" + how["xpath"])


def find(page: Page, alternatives: list[dict[str, Any]], budget_ms: int = STEP_BUDGET_MS) -> Locator:
    """The first alternative that finds an element within the budget (all are polled together)."""
    deadline = time.monotonic() + budget_ms / 1000
    while True:
        for how in alternatives:
            found = build(page, how)
            if found.count():
                return found.first
        if time.monotonic() > deadline:
            raise AssertionError(f"no element matches any of {{alternatives}}")
        time.sleep(0.1)

'''


def _slug(name: str) -> str:
    ascii_name = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    return ascii_name[:60] or "spec"


def _line(step: Step) -> list[str]:
    action = step.action
    target = json.dumps([loc.plain() for loc in step.target], ensure_ascii=False)
    budget = f", {round(step.timeout_s * 1000)}" if step.timeout_s else ""
    el = f"find(page, {target}{budget})"
    val = f"value({json.dumps(step.value or '', ensure_ascii=False)})"
    timeout = f"timeout={round((step.timeout_s or 5) * 1000)}"
    simple = {
        "click": f"{el}.click()",
        "fill": f"{el}.fill({val})",
        "select": f"{el}.select_option({val})",
        "hover": f"{el}.hover()",
        "check": f"{el}.check()",
        "uncheck": f"{el}.uncheck()",
        "scroll_into_view": f"{el}.scroll_into_view_if_needed()",
        "upload": f"{el}.set_input_files({val})",
        "wait_for": f"{el}.wait_for(state={step.state!r})",
        "expect_visible": f"expect({el}).to_be_visible({timeout})",
        "expect_text": f"expect({el}).to_contain_text({val}, {timeout})",
        "expect_value": f"expect({el}).to_have_value({val}, {timeout})",
        "expect_title": f"expect(page).to_have_title(re.compile(re.escape({val})), {timeout})",
        "screenshot": "page.screenshot()",
    }
    if action == "goto":
        return [f"page.goto(url(value({json.dumps(step.url, ensure_ascii=False)})))"]
    if action == "press":
        return [f"{el}.press({val})" if step.target else f"page.keyboard.press({val})"]
    if action == "expect_hidden":
        return [
            f"expect(build(page, {json.dumps(step.target[0].plain(), ensure_ascii=False)})).to_be_hidden({timeout})"
        ]
    if action == "expect_count":
        first = json.dumps(step.target[0].plain(), ensure_ascii=False)
        return [f"expect(build(page, {first})).to_have_count({step.count}, {timeout})"]
    if action == "expect_url":
        return [f"expect(page).to_have_url(re.compile(re.escape({val})), {timeout})"]
    return [simple[action]]


def to_pytest(spec: Spec, filename: str, step_budget_s: float) -> str:
    variables: dict[str, Any] = dict(spec.variables)
    text = _HEADER.format(
        name=spec.name.replace('"""', "'''"),
        base_url=spec.base_url,
        filename=filename,
        budget_ms=round(step_budget_s * 1000),
        variables=json.dumps(variables, ensure_ascii=False),
        secret_names=sorted(spec.secrets),
    )
    body = [f"\ndef test_{_slug(spec.name)}(page: Page) -> None:"]
    for index, step in enumerate(spec.steps):
        note = "  # " + " ".join(step.description.split()) if step.description else ""
        body.append(f"    # step {index}: {step.action}{note}".rstrip())
        body.extend(f"    {line}" for line in _line(step))
    return text + "\n".join(body) + "\n"
