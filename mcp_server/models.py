"""What the tools return: pydantic models, so clients get an output schema and structured content."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field


class _Out(BaseModel):
    # Built from the services' views, which carry more than a tool result needs.
    model_config = ConfigDict(extra="ignore")


class TaskError(_Out):
    type: str | None = Field(default=None, description="what kind of failure")
    message: str = Field(description="what went wrong")
    hint: str | None = Field(default=None, description="how to fix it")


class Cost(_Out):
    tokens: int = Field(description="prompt plus completion tokens the task spent")
    cost_usd: float = Field(description="what those tokens cost")
    calls_by_tier: dict[str, int] = Field(default_factory=dict, description="model calls per tier")


class TaskStatus(_Out):
    id: str
    kind: str
    status: Literal["pending", "running", "reviewing", "succeeded", "failed", "cancelled"]
    progress: int = Field(description="0-100")
    current_step: str | None = None
    created_at: str | None = None
    finished_at: str | None = None
    error: TaskError | None = Field(default=None, description="set when the task failed")
    awaiting_review: Any = Field(default=None, description="what a reviewer must decide (status 'reviewing')")
    summary: str | None = Field(default=None, description="the result in one line, with its cost")
    cost: Cost | None = None
    next: str = Field(description="what to do next")


class TaskList(_Out):
    total: int
    items: list[TaskStatus]
    next_cursor: str | None = Field(default=None, description="pass as cursor for the next page")


class Step(_Out):
    action: str = ""
    expected: str = ""
    data: Any = None


class Case(_Out):
    id: str
    title: str
    module: str | None = None
    type: str
    priority: str
    preconditions: list[str] = Field(default_factory=list)
    steps: list[Step] = Field(default_factory=list)
    covers: list[str] = Field(default_factory=list)
    review_status: str
    source: str | None = None
    draft: bool = Field(default=False, description="a rule-based case nobody has reviewed: check it before use")
    label: str | None = Field(default=None, description='"rule-based draft: review before use" on such cases')


class CasePage(_Out):
    task_id: str
    total: int = Field(description="cases of the task in all pages")
    items: list[Case]
    next_cursor: str | None = Field(default=None, description="pass as cursor to get_test_cases for the next page")
    task: TaskStatus | None = None


class GenerationOutcome(_Out):
    task: TaskStatus
    cases: CasePage | None = Field(default=None, description="the first page of cases, once the task has finished")


class CaseReview(_Out):
    task_id: str
    accepted: list[str]
    rejected: list[str]
    edited: list[str]
    pending: int = Field(description="cases of the task still waiting for review")


class ExportLink(_Out):
    uri: str = Field(description="read this resource for the whole export")
    format: str
    mime_type: str
    binary: bool = Field(description="true: the resource is a blob (base64), to be saved as a file")
    filename: str = Field(description="a file name for it")
    size: int = Field(description="bytes")
    cases: int = Field(description="cases in the file")
    preview: str = Field(description="the start of the export (empty for binary formats)")


class Hit(_Out):
    document_id: str | None = Field(default=None, validation_alias=AliasChoices("document_id", "doc_id"))
    title: str | None = None
    section: str | None = None
    source: str | None = None
    score: float | None = None
    text: str


class SearchResult(_Out):
    query: str
    items: list[Hit]


class Document(_Out):
    id: str
    title: str | None = None
    source: str | None = None
    chunks: int | None = None
    task_id: str | None = Field(default=None, description="set when a large document is ingested as a task")


class PromptInfo(_Out):
    name: str
    description: str | None = None
    production_version: int | None = None
    variables: dict[str, Any] = Field(default_factory=dict, description="JSON schema of the variables")


class PromptList(_Out):
    items: list[PromptInfo]


class Message(_Out):
    role: str
    content: Any


class RenderedPrompt(_Out):
    name: str
    version: int
    messages: list[Message]
    tier: str | None = None


class BudgetLine(_Out):
    id: str
    name: str | None = None
    scope: str | None = None
    period: str
    action: str
    unit: str
    limit: float
    used: float
    reserved: float
    remaining: float
    resets_at: str | None = None


class BudgetStatus(_Out):
    project: str
    budgets: list[BudgetLine]
    spend_today_by_tier: dict[str, float] = Field(default_factory=dict, description="USD per tier today")
    savings_vs_all_plus_usd: float | None = Field(default=None, description="today's saving from routing to turbo")
