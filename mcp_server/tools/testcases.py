"""Test-case tools: generate (a long tool), read in pages, review in bulk, export; and automation."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from pydantic import Field

from agents.testcases.export import EXPORTERS, FormatName
from agents.testcases.review import MAX_BULK, CaseChanges

from ..caller import Caller
from ..errors import domain_errors
from ..models import Case, CasePage, CaseReview, ExportLink, GenerationOutcome, TaskStatus
from ..platform import Platform
from ..sizing import cut, decode_cursor, encode_cursor, page
from ..views import settled_status, task_status
from ..waiting import wait_for_task

TaskId = Annotated[str, Field(min_length=1, max_length=64, description="the testcase.generate task's id")]
CaseType = Literal["functional", "boundary", "negative", "security", "performance", "usability", "compatibility"]
# Cases are read from the store in one page this large, then cut to the result's size budget.
_MAX_CASES = 500
_EDIT_FIELDS = ", ".join(CaseChanges.model_fields)
_FORMATS = "; ".join(f"{name}: {found.description}" for name, found in EXPORTERS.items())


def register(server: MCPServer, platform: Platform, caller: Caller, budget_tokens: int, max_wait_s: float) -> None:
    async def cases_page(principal: Any, task_id: str, offset: int) -> CasePage:
        found = await platform.testcases.list_cases(principal, task_id, None, _MAX_CASES, 0)
        items = [Case.model_validate(item) for item in found["items"]]
        shown, next_offset = page(items, offset, budget_tokens)
        cursor = encode_cursor(next_offset) if next_offset is not None else None
        return CasePage(task_id=task_id, total=found["total"], items=shown, next_cursor=cursor)

    @server.tool(title="Generate test cases")
    @domain_errors
    async def generate_test_cases(
        ctx: Context,
        requirement: Annotated[
            str | None, Field(min_length=1, max_length=100_000, description="the requirement text (Chinese or English)")
        ] = None,
        document_id: Annotated[
            str | None, Field(min_length=1, max_length=64, description="or: a knowledge-base document's id")
        ] = None,
        case_types: Annotated[list[CaseType] | None, Field(description="default: all types")] = None,
        language: Annotated[Literal["zh", "en"] | None, Field(description="default: the requirement's")] = None,
        max_cases: Annotated[int | None, Field(ge=1, le=100, description="default: the server's setting")] = None,
        wait_seconds: Annotated[
            float, Field(ge=0, le=600, description="wait this long for the result, with progress (capped)")
        ] = 0,
    ) -> GenerationOutcome:
        """Turn a requirement into test cases (a testcase.generate task). Returns the task at once, or waits."""
        principal = caller(ctx)
        task_input: dict[str, Any] = {"requirement": requirement, "document_id": document_id}
        if case_types is not None:
            task_input["case_types"] = case_types
        if language is not None:
            task_input["language"] = language
        if max_cases is not None:
            task_input["max_cases"] = max_cases
        task, _ = await platform.tasks.submit(principal, "testcase.generate", task_input)
        task = await wait_for_task(platform, principal, task, min(wait_seconds, max_wait_s), ctx)
        status = await settled_status(platform, principal, task, budget_tokens // 4)
        cases = await cases_page(principal, task["id"], 0) if task["status"] == "succeeded" else None
        return GenerationOutcome(task=status, cases=cases)

    @server.tool(title="Read test cases")
    @domain_errors
    async def get_test_cases(
        task_id: TaskId,
        ctx: Context,
        cursor: Annotated[str | None, Field(max_length=200, description="next_cursor of the previous page")] = None,
    ) -> CasePage:
        """The cases a testcase.generate task produced, paged to fit the context."""
        principal = caller(ctx)
        offset = decode_cursor(cursor)  # a bad argument is reported before any lookup
        task = await platform.tasks.get(principal, task_id)
        result = await cases_page(principal, task_id, offset)
        result.task = task_status(task, 300)
        return result

    @server.tool(title="Review test cases")
    @domain_errors
    async def review_test_cases(
        task_id: TaskId,
        ctx: Context,
        accepted: Annotated[list[str], Field(max_length=MAX_BULK, description="ids of cases to accept")] = [],  # noqa: B006
        rejected: Annotated[list[str], Field(max_length=MAX_BULK, description="ids of cases to reject")] = [],  # noqa: B006
        edits: Annotated[
            dict[str, dict[str, Any]] | None,
            Field(
                description="case id -> fields to change, an edited case is accepted: "
                + _EDIT_FIELDS
                + "; steps are [{action, data?, expected}]"
            ),
        ] = None,
    ) -> CaseReview:
        """Accept, reject or edit a task's cases in one call, all or nothing: a bad edit anywhere changes no case.

        Accepted cases become examples for later generations. A refusal lists every problem with its case id
        and field.
        """
        # Edits go to the service as sent, so that every bad one comes back with its case id and field.
        done = await platform.testcases.review_many(caller(ctx), task_id, list(accepted), list(rejected), edits)
        return CaseReview.model_validate(done)

    @server.tool(title="Export test cases")
    @domain_errors
    async def export_test_cases(
        task_id: TaskId,
        ctx: Context,
        format: Annotated[FormatName, Field(description=_FORMATS)],
        layout: Annotated[
            Literal["case", "step"] | None,
            Field(description="csv, xlsx, md: one row per case (default) or one row per step"),
        ] = None,
        lang: Annotated[
            Literal["zh", "en"] | None, Field(description="words of headers and labels; default: the task's language")
        ] = None,
        status: Annotated[
            Literal["pending", "accepted", "rejected", "all"] | None,
            Field(description="only cases of this review status; default: all but rejected"),
        ] = None,
    ) -> ExportLink:
        """Export a finished task's cases for a test-management tool or a spreadsheet; the file is at `uri`.

        Every case is marked as a draft (rule-based or model, review before use) or reviewed.
        """
        exported = await platform.testcases.export(caller(ctx), task_id, format, status, layout, lang)
        found = EXPORTERS[format]
        options = {k: v for k, v in (("layout", layout), ("lang", lang), ("status", status)) if v is not None}
        query = f"?{urlencode(options)}" if options else ""
        preview = ""
        if not found.binary:
            text = exported.data.decode("utf-8-sig")
            preview, _ = cut(text, min(800, budget_tokens // 4), "read the resource for the rest")
        return ExportLink(
            uri=f"task://{task_id}/testcases.{found.resource_suffix}{query}",
            format=format,
            mime_type=exported.media_type,
            binary=found.binary,
            filename=exported.filename,
            size=len(exported.data),
            cases=exported.cases,
            preview=preview,
        )

    @server.tool(title="Generate automation")
    @domain_errors
    async def generate_automation(
        ctx: Context,
        test_case_id: Annotated[
            str | None, Field(min_length=1, max_length=64, description="an accepted test case's id")
        ] = None,
        case: Annotated[
            dict[str, Any] | None, Field(description="or: an inline case {title, steps: [{action, expected}]}")
        ] = None,
        base_url: Annotated[str, Field(max_length=2000, description="where the system under test runs")] = "",
        wait_seconds: Annotated[float, Field(ge=0, le=600, description="wait this long (capped), with progress")] = 0,
    ) -> TaskStatus:
        """Turn a test case into a browser spec or API test (automation.generate); it parks for review at step 9."""
        principal = caller(ctx)
        task_input: dict[str, Any] = {"testcase_id": test_case_id, "case": case}
        if base_url:
            task_input["base_url"] = base_url
        task, _ = await platform.tasks.submit(principal, "automation.generate", task_input)
        task = await wait_for_task(platform, principal, task, min(wait_seconds, max_wait_s), ctx)
        return await settled_status(platform, principal, task, budget_tokens)
