"""The service layer as the MCP tools see it: the same objects the REST handlers call.

Structural types only: the tools depend on these method signatures, not on how
the platform is assembled, so the HTTP server and ``aitp mcp`` pass whatever
object holds the built services.
"""

from __future__ import annotations

from typing import Any, Protocol

from agents.tasks.events import LocalBus
from core.identity.principal import Principal
from gateway.task_costs import TaskCost


class TaskOps(Protocol):
    async def submit(
        self,
        principal: Principal,
        kind: str,
        input: dict[str, Any],
        idempotency_key: str | None = None,
        priority: int = 0,
    ) -> tuple[dict[str, Any], bool]: ...
    async def get(self, principal: Principal, task_id: str) -> dict[str, Any]: ...
    async def list(
        self, principal: Principal, status: str | None, kind: str | None, limit: int, offset: int
    ) -> dict[str, Any]: ...
    async def cancel(self, principal: Principal, task_id: str) -> dict[str, Any]: ...
    async def review(
        self,
        principal: Principal,
        task_id: str,
        action: str,
        feedback: str | None = None,
        corrected_body: Any = None,
    ) -> dict[str, Any]: ...


class TestCaseOps(Protocol):
    async def list_cases(
        self, principal: Principal, task_id: str | None, status: str | None, limit: int, offset: int
    ) -> dict[str, Any]: ...
    async def review_many(
        self,
        principal: Principal,
        task_id: str,
        accepted: list[str],
        rejected: list[str],
        edits: dict[str, dict[str, Any]] | None,
    ) -> dict[str, Any]: ...
    async def export(self, principal: Principal, task_id: str, fmt: str) -> tuple[bytes | str, str, str]: ...


class KnowledgeOps(Protocol):
    async def ingest_text(
        self, principal: Principal, title: str, text: str, source: str | None = None
    ) -> dict[str, Any]: ...
    async def get_document(self, principal: Principal, doc_id: str, include_text: bool = False) -> dict[str, Any]: ...
    async def search(
        self, principal: Principal, query: str, k: int = 5, source: str | None = None
    ) -> dict[str, Any]: ...


class PromptOps(Protocol):
    async def list(self, principal: Principal) -> list[dict[str, Any]]: ...
    async def render(
        self,
        principal: Principal,
        name: str,
        variables: dict[str, Any],
        version: int | None = None,
        label: str | None = None,
    ) -> dict[str, Any]: ...


class BudgetOps(Protocol):
    async def status(self, principal: Principal) -> dict[str, Any]: ...


class CostOps(Protocol):
    async def of(self, principal: Principal, task_id: str) -> TaskCost: ...


class Platform(Protocol):
    @property
    def tasks(self) -> TaskOps: ...
    @property
    def testcases(self) -> TestCaseOps: ...
    @property
    def knowledge(self) -> KnowledgeOps: ...
    @property
    def prompts(self) -> PromptOps: ...
    @property
    def budgets(self) -> BudgetOps: ...
    @property
    def costs(self) -> CostOps: ...
    @property
    def bus(self) -> LocalBus: ...
