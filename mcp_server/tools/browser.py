"""Browser tools: run a test (spec, or description + URL), read its results, inspect a page, export a spec.

Screenshots, traces and JUnit XML stay behind resources
(``task://{id}/artifacts/{name}``); results carry resource links to them, so an
assistant fetches an image only when it wants to look.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ResourceError
from mcp_types import CallToolResult, ResourceLink, TextContent
from pydantic import BaseModel, ConfigDict, Field

from core.errors import APIError

from ..caller import Caller
from ..errors import domain_errors
from ..models import TaskStatus
from ..platform import Platform
from ..sizing import cut, estimate_tokens, page
from ..views import task_status
from ..waiting import wait_for_task

TaskId = Annotated[str, Field(min_length=1, max_length=64, description="the browser.run task's id")]


class _Out(BaseModel):
    model_config = ConfigDict(extra="ignore")


class StepResult(_Out):
    index: int
    action: str
    status: str = Field(description="passed, failed, healed or skipped")
    tier: str | None = Field(default=None, description="gold (test id), silver (role/label/text), bronze (CSS/XPath)")
    duration_ms: int = 0
    locator: dict[str, Any] | None = None
    error: dict[str, Any] | None = Field(default=None, description="{code, message, suggestion}")
    heal: dict[str, Any] | None = Field(
        default=None, description="{old_locator, old_tier, new_locator, new_tier, confidence, evidence, tier_drop}"
    )
    screenshot: str | None = None


class RunResult(_Out):
    spec_name: str
    status: str
    passed: int
    failed: int
    healed: int
    skipped: int
    tiers: dict[str, int]
    tier_drops: int = 0
    duration_ms: int = 0
    steps: list[StepResult]
    steps_left_out: int = Field(default=0, description="passed steps not shown, to fit the context")
    blocked_requests: list[dict[str, Any]] = Field(default_factory=list)


class BrowserResults(_Out):
    task: TaskStatus
    status: str | None = Field(default=None, description="passed or failed, once the task finished")
    runs: list[RunResult] = Field(default_factory=list)
    screenshots: list[str] = Field(default_factory=list, description="resource URIs of the screenshots")
    junit: str | None = Field(default=None, description="resource URI of the JUnit XML report")
    generated_spec: dict[str, Any] | None = Field(default=None, description="the spec planned from a description")


class PageElements(_Out):
    url: str
    title: str
    elements: list[dict[str, Any]] = Field(description="{tag, role, name, testid …, locator, tier} in page order")
    left_out: int = Field(default=0, description="elements not shown, to fit the context")


class ExportedTest(_Out):
    file_name: str
    content: str = Field(description="a standalone pytest-playwright file")
    truncated: bool = False


def _uri(task_id: str, name: str) -> str:
    return f"task://{task_id}/artifacts/{name}"


def _fit(run: dict[str, Any], budget_tokens: int) -> RunResult:
    steps = run.get("steps", [])
    shown = steps
    if estimate_tokens(steps) > budget_tokens:  # keep what needs attention: failed and healed steps
        shown = [s for s in steps if s["status"] in ("failed", "healed")][:20]
    return RunResult.model_validate({**run, "steps": shown, "steps_left_out": len(steps) - len(shown)})


def results_of(view: dict[str, Any], budget_tokens: int) -> BrowserResults:
    task_id = view["id"]
    result = view.get("result") if view.get("status") == "succeeded" else None
    out = BrowserResults(task=task_status(view, budget_tokens // 8))
    if not isinstance(result, dict):
        return out
    runs = result.get("runs", [])
    out.runs = [_fit(r, budget_tokens // (2 * max(len(runs), 1))) for r in runs]
    out.status = result.get("status")
    out.screenshots = [
        f"task://{task_id}/screenshots/{n}" for r in runs for n in r.get("artifacts", []) if n.endswith(".png")
    ]
    out.junit = _uri(task_id, "junit.xml")
    out.generated_spec = result.get("generated_spec")
    return out


def _with_links(results: BrowserResults) -> CallToolResult:
    text = results.model_dump_json(exclude_none=True)
    content: list[Any] = [TextContent(type="text", text=text)]
    for uri in results.screenshots[:20]:
        content.append(ResourceLink(type="resource_link", uri=uri, name=uri.rsplit("/", 1)[-1], mime_type="image/png"))
    return CallToolResult(content=content, structured_content=results.model_dump(mode="json"))


def register(server: MCPServer, platform: Platform, caller: Caller, budget_tokens: int, max_wait_s: float) -> None:
    @server.tool(title="Run a browser test")
    @domain_errors
    async def run_browser_test(
        ctx: Context,
        spec: Annotated[
            dict[str, Any] | str | None,
            Field(description="a spec: {base_url, steps: [{action, target, value}]} (object, YAML or JSON text)"),
        ] = None,
        description: Annotated[
            str | None, Field(min_length=1, max_length=5000, description="or: what to test, in plain words")
        ] = None,
        url: Annotated[str | None, Field(max_length=2000, description="with description: the start page")] = None,
        wait_seconds: Annotated[float, Field(ge=0, le=600, description="wait this long for the result (capped)")] = 0,
    ) -> Annotated[CallToolResult, BrowserResults]:
        """Run a browser test in the server's pooled Chromium (a browser.run task); returns at once, or waits."""
        principal = caller(ctx)
        data: dict[str, Any] = {"spec": spec} if spec is not None else {"description": description, "url": url}
        task = await platform.browser.run(principal, data)
        task = await wait_for_task(platform, principal, task, min(wait_seconds, max_wait_s), ctx)
        return _with_links(results_of(task, budget_tokens))

    @server.tool(title="Read browser test results")
    @domain_errors
    async def get_browser_results(task_id: TaskId, ctx: Context) -> Annotated[CallToolResult, BrowserResults]:
        """Per-step results, tiers, heals with their suggested fixes, and links to the screenshots."""
        task = await platform.tasks.get(caller(ctx), task_id)
        await platform.browser.results(caller(ctx), task_id)  # a task of another kind is "not found" here
        return _with_links(results_of(task, budget_tokens))

    @server.tool(title="Inspect a page")
    @domain_errors
    async def inspect_page(
        url: Annotated[str, Field(min_length=1, max_length=2000, description="the page (on an allowed host)")],
        ctx: Context,
    ) -> PageElements:
        """Every visible interactive element with its best unique locator and that locator's tier, to write a spec."""
        found = await platform.browser.inspect(caller(ctx), url)
        shown, rest = page(found["elements"], 0, budget_tokens - 200)
        left = len(found["elements"]) - len(shown) if rest is not None else 0
        return PageElements(url=found["url"], title=found["title"], elements=shown, left_out=left)

    @server.tool(title="Export a browser test")
    @domain_errors
    async def export_browser_test(
        spec_id: Annotated[str, Field(min_length=1, max_length=64, description="a stored spec's id")],
        ctx: Context,
    ) -> ExportedTest:
        """A stored spec as a standalone pytest-playwright file (locators in tier order, the assertions)."""
        text, name = await platform.browser.export(caller(ctx), spec_id, "pytest")
        content, truncated = cut(text, budget_tokens, f"GET /api/browser/specs/{spec_id}/export for the whole file")
        return ExportedTest(file_name=name, content=content, truncated=truncated)

    async def read_artifact(task_id: str, name: str, ctx: Context) -> bytes:
        try:
            path = await platform.browser.artifact(caller(ctx), task_id, name)
        except APIError as exc:
            raise ResourceError(exc.message) from None
        return await asyncio.to_thread(path.read_bytes)

    @server.resource("task://{task_id}/artifacts/{name}", name="artifact", mime_type="application/octet-stream")
    async def artifact(task_id: str, name: str, ctx: Context) -> bytes:
        """A browser run's artefact: trace.zip, junit.xml, a screenshot."""
        return await read_artifact(task_id, name, ctx)

    @server.resource("task://{task_id}/screenshots/{name}", name="screenshot", mime_type="image/png")
    async def screenshot(task_id: str, name: str, ctx: Context) -> bytes:
        """A browser run's screenshot (PNG)."""
        return await read_artifact(task_id, name, ctx)

    @server.resource("task://{task_id}/screenshots/{run}/{name}", name="suite-screenshot", mime_type="image/png")
    async def suite_screenshot(task_id: str, run: str, name: str, ctx: Context) -> bytes:
        """A screenshot of one spec of a suite run (PNG)."""
        return await read_artifact(task_id, f"{run}/{name}", ctx)
