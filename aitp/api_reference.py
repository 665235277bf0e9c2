"""The API reference: one :class:`~core.openapi.Endpoint` per route, served as ``/openapi.json`` and ``/docs``.

Bodies are the pydantic models the handlers parse, so the reference cannot
drift from what the server accepts; a test checks that every route of the app
is listed here, so a new route cannot be forgotten.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from agents.browser.service import InspectRequest, SpecBody, SpecPatch
from agents.browser.task import BrowserRunInput
from agents.kb.service import TextDocument
from agents.tasks.kinds import KindList
from agents.tasks.service import ReviewSpec, SubmitSpec
from agents.testcases.routes import BulkReview
from agents.testcases.service import ReviewBody
from core.apidocs import render_docs
from core.http import JSONResponse
from core.identity.routes import KeySpec, ProjectSpec, RevokeSpec
from core.openapi import Endpoint, Param, build_spec
from gateway.budgets.specs import BudgetSpec
from gateway.prompts.service import LabelSpec, RenderSpec, RollbackSpec
from gateway.prompts.spec import PromptSpec
from gateway.schemas import ChatRequest, EmbeddingRequest

LIMIT = Param("limit", "integer", "page size")
OFFSET = Param("offset", "integer", "rows to skip")
PROJECT = Param("project", description="the server admin key: one project (default: its own or all)")
FROM = Param("from", description="ISO-8601 date or time, UTC unless it says (default: 30 days ago)")
TO = Param("to", description="ISO-8601 date or time (default: now)")
STATUS_CASE = Param("status", description="review status", enum=("pending", "accepted", "rejected"))
UPLOAD = {
    "type": "object",
    "required": ["file"],
    "properties": {
        "file": {"type": "string", "format": "binary", "description": "txt, md, html, pdf, docx, xlsx, csv, zip …"},
        "title": {"type": "string"},
        "source": {"type": "string", "description": "where it comes from (default: the file name)"},
        "content_type": {"type": "string"},
    },
}
YAML = {"type": "string", "description": "the prompt as YAML, the same fields as the JSON body"}
SSE = "text/event-stream"

ENDPOINTS: tuple[Endpoint, ...] = (
    # OpenAI-compatible gateway
    Endpoint(
        "POST",
        "/v1/chat/completions",
        "Chat completion, streamed or not; model auto, turbo, plus or a deployment",
        "gateway",
        body=ChatRequest,
        description="Headers x-aitp-model, x-aitp-tier, x-aitp-route-reason and x-aitp-cost-usd say what happened. "
        "With stream: true the answer is text/event-stream in OpenAI's chunk format.",
    ),
    Endpoint("POST", "/v1/embeddings", "Embeddings from an embedding deployment", "gateway", body=EmbeddingRequest),
    Endpoint("GET", "/v1/models", "Models this key may use: auto, the tiers and each deployment", "gateway"),
    # identity
    Endpoint(
        "POST", "/api/projects", "Create a project (server admin key)", "projects and keys", ProjectSpec, status=201
    ),
    Endpoint("GET", "/api/projects", "Projects this key sees", "projects and keys"),
    Endpoint("POST", "/api/keys", "Create a key; its secret is shown once", "projects and keys", KeySpec, status=201),
    Endpoint("GET", "/api/keys", "Keys of a project (never their secrets)", "projects and keys", query=(PROJECT,)),
    Endpoint("DELETE", "/api/keys/{key_id}", "Revoke a key at once", "projects and keys", RevokeSpec),
    Endpoint("GET", "/api/audit", "Audit log of admin actions", "projects and keys", query=(PROJECT, LIMIT, OFFSET)),
    # budgets and usage
    Endpoint("POST", "/api/budgets", "Create or change a budget", "budgets and usage", BudgetSpec, status=201),
    Endpoint("PUT", "/api/budgets", "Create or change a budget", "budgets and usage", BudgetSpec),
    Endpoint("GET", "/api/budgets", "Budgets of a project", "budgets and usage", query=(PROJECT,)),
    Endpoint(
        "GET", "/api/budgets/{budget_id}/status", "Used, reserved and left, and when it resets", "budgets and usage"
    ),
    Endpoint("DELETE", "/api/budgets/{budget_id}", "Delete a budget", "budgets and usage"),
    Endpoint(
        "GET",
        "/api/alerts",
        "Budget threshold crossings, newest first",
        "budgets and usage",
        query=(PROJECT, LIMIT, OFFSET),
    ),
    Endpoint(
        "GET",
        "/api/usage",
        "Requests, tokens, cost, errors and latency, grouped",
        "budgets and usage",
        description="Each group and `totals` give requests, prompt/completion/total tokens, cost_usd, errors "
        "(HTTP status >= 400), p50/p95/p99_latency_ms, upstream_ms (time spent waiting on the upstream), "
        "upstream_share (upstream_ms over the latency of the rows that measured it, 0 to 1, null when none did) "
        "and p95_overhead_ms (p95 of latency minus upstream time per call: the gateway's own time).",
        query=(
            PROJECT,
            FROM,
            TO,
            Param("group_by", enum=("day", "project", "key", "model", "tier", "prompt", "endpoint")),
            Param("format", enum=("json", "csv")),
        ),
    ),
    Endpoint(
        "GET",
        "/api/usage/savings",
        "What model auto saved against all-plus",
        "budgets and usage",
        query=(PROJECT, FROM, TO),
    ),
    # tasks
    Endpoint(
        "POST",
        "/api/tasks",
        "Submit a task; answers at once (201, or 200 for a repeated idempotency key)",
        "tasks",
        SubmitSpec,
        status=201,
        query=(Param("Idempotency-Key", where="header", description="the same key returns the same task"),),
        description="The input is validated against the kind's model (GET /api/tasks/kinds) and checked against "
        "the platform (documents, cases, a configured model) before anything is stored: a 400 names the field.",
    ),
    Endpoint(
        "GET",
        "/api/tasks",
        "Tasks of the project, newest first: {total, items, limit, offset}",
        "tasks",
        query=(
            Param("status", enum=("pending", "running", "reviewing", "succeeded", "failed", "cancelled")),
            Param("kind"),
            LIMIT,
            OFFSET,
        ),
    ),
    Endpoint("GET", "/api/tasks/stats", "Task counts by status and kind", "tasks"),
    Endpoint("GET", "/api/tasks/kinds", "Task kinds with the JSON schema of their input", "tasks", response=KindList),
    Endpoint("GET", "/api/tasks/{task_id}", "One task: status, progress, result, error and hint", "tasks"),
    Endpoint("POST", "/api/tasks/{task_id}/cancel", "Cancel a task", "tasks"),
    Endpoint(
        "POST",
        "/api/tasks/{task_id}/review",
        "Approve, correct or reject a task waiting for review",
        "tasks",
        ReviewSpec,
    ),
    Endpoint(
        "GET",
        "/api/tasks/{task_id}/events",
        "Progress as server-sent events; ends after the final event",
        "tasks",
        query=(
            Param("Last-Event-ID", where="header", description="replay after this event"),
            Param("last_event_id", "integer"),
        ),
        response_type=SSE,
    ),
    Endpoint(
        "GET",
        "/api/ws",
        "WebSocket of the project's task notifications (upgrade; the key may come as ?token=)",
        "tasks",
        query=(Param("token", description="the key, for browsers that cannot set headers"),),
        status=101,
    ),
    # test cases
    Endpoint(
        "GET",
        "/api/testcases",
        "Test cases of the project",
        "test cases",
        query=(Param("task_id"), STATUS_CASE, LIMIT, OFFSET),
    ),
    Endpoint("GET", "/api/testcases/{case_id}", "One test case", "test cases"),
    Endpoint("POST", "/api/testcases/{case_id}/review", "Accept, reject or edit one case", "test cases", ReviewBody),
    Endpoint(
        "GET",
        "/api/tasks/{task_id}/testcases",
        "Export a generation's cases",
        "test cases",
        query=(Param("format", description="json, csv, xlsx, md …"), STATUS_CASE),
        response_type="application/octet-stream",
    ),
    Endpoint(
        "POST",
        "/api/tasks/{task_id}/testcases/review",
        "Review many cases of a generation at once, atomically",
        "test cases",
        BulkReview,
    ),
    Endpoint(
        "GET",
        "/api/automation/cases",
        "Automation cases made by automation.generate",
        "test cases",
        query=(Param("target", enum=("browser", "api")), LIMIT, OFFSET),
    ),
    Endpoint("GET", "/api/automation/cases/{case_id}", "One automation case", "test cases"),
    # knowledge base
    Endpoint(
        "POST",
        "/api/kb/documents",
        "Add a document: a file upload or JSON text (201; 202 with a task for a large file)",
        "knowledge base",
        TextDocument,
        status=201,
        body_types={"multipart/form-data": UPLOAD},
    ),
    Endpoint(
        "GET", "/api/kb/documents", "Documents of the project", "knowledge base", query=(LIMIT, OFFSET, Param("source"))
    ),
    Endpoint(
        "GET",
        "/api/kb/documents/{doc_id}",
        "One document",
        "knowledge base",
        query=(Param("include", enum=("text",), description="text: with its full text"),),
    ),
    Endpoint("DELETE", "/api/kb/documents/{doc_id}", "Delete a document and its chunks", "knowledge base", status=204),
    Endpoint(
        "GET",
        "/api/kb/search",
        "Passages nearest in meaning to a query",
        "knowledge base",
        query=(
            Param("q", required=True),
            Param("k", "integer", "how many (default 5)"),
            Param("source"),
            Param("kind", enum=("document", "example")),
        ),
    ),
    # prompts
    Endpoint("GET", "/api/prompts", "Prompts with their labels and latest version", "prompts"),
    Endpoint(
        "POST",
        "/api/prompts",
        "Publish a prompt version (immutable, content-hashed)",
        "prompts",
        PromptSpec,
        status=201,
        body_types={"application/yaml": YAML},
    ),
    Endpoint("GET", "/api/prompts/{name}", "One prompt: versions and labels", "prompts"),
    Endpoint("GET", "/api/prompts/{name}/versions/{version}", "One version with its spec", "prompts"),
    *(
        Endpoint(
            method,
            "/api/prompts/{name}/versions/{version}",
            "Refused: published versions are immutable",
            "prompts",
            status=409,
        )
        for method in ("PUT", "PATCH", "DELETE")
    ),
    Endpoint(
        "PUT",
        "/api/prompts/{name}/labels/{label}",
        "Point a label (production, canary …) at a version",
        "prompts",
        LabelSpec,
    ),
    Endpoint("DELETE", "/api/prompts/{name}/labels/{label}", "Remove a label", "prompts"),
    Endpoint("POST", "/api/prompts/{name}/rollback", "Move a label back", "prompts", RollbackSpec),
    Endpoint(
        "GET",
        "/api/prompts/{name}/diff",
        "Differences between two versions",
        "prompts",
        query=(Param("from", "integer"), Param("to", "integer")),
    ),
    Endpoint(
        "POST",
        "/api/prompts/{name}/render",
        "Render a version with variables, without calling a model",
        "prompts",
        RenderSpec,
    ),
    Endpoint(
        "GET",
        "/api/prompts/{name}/stats",
        "Cost, errors and acceptance per version",
        "prompts",
        query=(PROJECT, FROM, TO),
    ),
    # MCP and operations
    Endpoint(
        "POST",
        "/mcp",
        "MCP over streamable HTTP (JSON-RPC; GET and DELETE too, as the MCP transport defines)",
        "mcp and operations",
        response_type=SSE,
        description="For MCP clients (Claude, Cursor, VS Code …), not for hand-written calls; see docs/mcp.md.",
    ),
    # browser runner
    Endpoint(
        "POST",
        "/api/browser/runs",
        "Run a browser test (a spec, a stored spec_id, or a description and a start URL) as a browser.run task",
        "browser",
        BrowserRunInput,
        status=202,
        query=(Param("Idempotency-Key", where="header", description="the same key returns the same task"),),
    ),
    Endpoint("GET", "/api/browser/runs/{task_id}", "Per-step results, tiers, heals and artefacts of a run", "browser"),
    Endpoint(
        "GET",
        "/api/tasks/{task_id}/artifacts/{name}",
        "A run's artefact: screenshot, trace, JUnit XML or download",
        "browser",
        response_type="application/octet-stream",
    ),
    Endpoint(
        "POST",
        "/api/browser/inspect",
        "Interactive elements of a page with their best locator",
        "browser",
        InspectRequest,
    ),
    Endpoint("GET", "/api/browser/specs", "Stored specs of the project", "browser", query=(LIMIT, OFFSET)),
    Endpoint("POST", "/api/browser/specs", "Store a spec", "browser", SpecBody, status=201),
    Endpoint("GET", "/api/browser/specs/{spec_id}", "One stored spec", "browser"),
    Endpoint("PUT", "/api/browser/specs/{spec_id}", "Replace a stored spec", "browser", SpecBody),
    Endpoint("DELETE", "/api/browser/specs/{spec_id}", "Delete a stored spec", "browser", status=204),
    Endpoint(
        "POST",
        "/api/browser/specs/{spec_id}/patch",
        "Accept a heal's suggested fix into the spec",
        "browser",
        SpecPatch,
    ),
    Endpoint(
        "GET",
        "/api/browser/specs/{spec_id}/export",
        "The spec as a standalone pytest-playwright file",
        "browser",
        query=(Param("format", enum=("pytest",)),),
        response_type="text/x-python",
    ),
    # console data
    Endpoint("GET", "/api/me", "The caller: key, project, role, and whether it is the server admin key", "console"),
    Endpoint(
        "GET",
        "/api/usage/series",
        "Requests, tokens and cost per hour or day, stacked by tier or model",
        "budgets and usage",
        query=(
            PROJECT,
            FROM,
            TO,
            Param("bucket", enum=("hour", "day")),
            Param("stack", enum=("tier", "model")),
            Param("key", description="one key's calls"),
        ),
    ),
    Endpoint(
        "GET",
        "/api/usage/artefacts",
        "Cost per generated case, per accepted case and per browser run",
        "budgets and usage",
        query=(PROJECT, FROM, TO, Param("key", description="one key's calls")),
    ),
    Endpoint(
        "GET",
        "/api/budgets/overview",
        "Every budget with its status and a burn-down forecast at the last 24 h rate",
        "budgets and usage",
        query=(PROJECT,),
    ),
    Endpoint(
        "GET",
        "/api/monitor",
        "Gateway latency, errors and the upstream's share by route, queue depth; server figures for the server admin",
        "console",
        description="`routes` and `totals`: requests, errors, error_rate, p50/p95/p99_ms, upstream_share (0 to 1) "
        "and overhead_p95_ms. `tasks`: queue_depth, oldest_pending_age_s, running, by_status. `system` (null "
        "unless the server admin key): ledger probe, workers (mode, count, threads, and items with each live "
        "worker process's id, host, pid, threads, queues, started_at, beat_at, age_s and last_beat_s; every "
        "`aitp worker` with Redis, this process in embedded mode), process, host, disk and browser_pool.",
        query=(PROJECT, Param("window_s", "integer", "seconds looked back")),
    ),
    Endpoint(
        "GET", "/console", "The web console (redirects to /console/)", "console", public=True, response_type="text/html"
    ),
    Endpoint(
        "GET",
        "/dashboard",
        "The budget dashboard: redirects to the console",
        "console",
        public=True,
        response_type="text/html",
    ),
    Endpoint(
        "GET",
        "/dashboard/",
        "The budget dashboard: redirects to the console",
        "console",
        public=True,
        response_type="text/html",
    ),
    Endpoint("GET", "/healthz", "Liveness", "mcp and operations", public=True),
    Endpoint(
        "GET",
        "/readyz",
        "Readiness: database, Redis, the LLM engine (503 until ready)",
        "mcp and operations",
        public=True,
    ),
    Endpoint("GET", "/metrics", "Prometheus metrics", "mcp and operations", public=True, response_type="text/plain"),
    Endpoint("GET", "/openapi.json", "This reference as OpenAPI 3.1", "mcp and operations", public=True),
    Endpoint("GET", "/docs", "This reference as a page", "mcp and operations", public=True, response_type="text/html"),
)


def reference_routes(version: str) -> list[Route]:
    """``/openapi.json`` and ``/docs``, built once (they need no key: they describe, they do not act)."""
    spec = build_spec(
        ENDPOINTS,
        "aitp",
        version,
        "AI gateway (OpenAI API, budgets) and agent server for software-testing teams.",
    )
    page = render_docs(spec)

    async def openapi(request: Request) -> Response:
        return JSONResponse(spec)

    async def docs(request: Request) -> Response:
        return HTMLResponse(page)

    return [Route("/openapi.json", openapi, methods=["GET"]), Route("/docs", docs, methods=["GET"])]
