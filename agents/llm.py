"""Model calls made by tasks: through the gateway's own chat service, in process.

Every call is routed, budgeted and recorded like an API call, under the
task's project and the key that submitted the task, so a task can never spend
more than its project's budgets allow. Failures come back as
:class:`LLMFailure` with a ``reason`` a workflow can act on: ``budget`` (a
block budget or rate limit refused it), ``unavailable`` (no model answered)
or ``invalid_request``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

from core.errors import APIError
from core.identity.principal import Principal
from core.settings import LOCAL_ECHO, TIERS, GenerationSettings
from gateway.catalog import Catalog
from gateway.chat import CallContext, ChatService, Completion

from .tasks.context import TaskContext

FailureReason = Literal["budget", "unavailable", "invalid_request"]


class LLMFailure(Exception):
    def __init__(self, reason: FailureReason, message: str, status: int, code: str | None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.status = status
        self.code = code


def _reason(error: APIError) -> FailureReason:
    if error.status == 429:
        return "budget"
    if error.status >= 500 or error.status in (404, 408):
        return "unavailable"
    return "invalid_request"


@dataclass(slots=True)
class AgentLLM:
    chat: ChatService
    catalog: Catalog
    settings: GenerationSettings

    @property
    def only_echo(self) -> bool:
        """True when no real model is configured: the built-in local/echo stand-in would answer."""
        return all(entry.is_echo for entry in self.catalog.entries.values())

    def echo_targets(self, model: str | None = None) -> list[str]:
        """What a call to ``model`` (default generation.model) may reach that only local/echo serves.

        ``auto`` may route to either tier (a JSON-schema answer goes to plus), so each tier served by
        the stand-in is named; [] when every route reaches a real model.
        """
        name = model or self.settings.model
        if name == "auto":
            return [f"the {tier} tier" for tier in TIERS if self.catalog.tier_is_echo(tier)]
        if name in TIERS:
            return [f"the {name} tier"] if self.catalog.tier_is_echo(name) else []
        entry = self.catalog.entries.get(name)
        return [f"'{name}'"] if entry is not None and entry.is_echo else []

    def principal(self, ctx: TaskContext) -> Principal:
        return Principal(key_id=ctx.key_id or "task", project_id=ctx.project_id, role="member")

    async def complete(
        self,
        ctx: TaskContext,
        step: str,
        *,
        prompt: dict[str, Any] | None = None,
        messages: list[dict[str, Any]] | None = None,
        model: str | None = None,
        max_tokens: int | None = None,
        response_format: dict[str, Any] | None = None,
    ) -> Completion:
        body: dict[str, Any] = {
            "model": model or self.settings.model,
            "max_tokens": max_tokens or self.settings.max_tokens,
        }
        if prompt is not None:
            body["prompt"] = prompt
        if messages:
            body["messages"] = messages
        if response_format is not None:
            body["response_format"] = response_format
        call = CallContext(
            request_id=f"task-{ctx.task_id}-{step}-a{ctx.attempt}"[:64],
            started=time.perf_counter(),
            principal=self.principal(ctx),
            task_id=ctx.task_id,
        )
        try:
            return await self.chat.complete(body, call)
        except APIError as exc:
            raise LLMFailure(_reason(exc), exc.message, exc.status, exc.code) from None


REPAIR_PROMPT = "testcase.repair"


def is_echo(completion: Completion) -> bool:
    return completion.model == LOCAL_ECHO


def answer_record(done: Completion) -> dict[str, Any]:
    """What a workflow checkpoints of a model answer (so a resumed task never asks again)."""
    return {
        "content": done.content,
        "model": done.model,
        "tier": done.tier,
        "cost_usd": done.cost_usd,
        "prompt_version": done.prompt_version,
    }


def repair_request(
    *, invalid_output: str, errors: list[str], schema: dict[str, Any], task: str, language: str, schema_name: str
) -> dict[str, Any]:
    """The ``prompt`` and ``response_format`` of a ``testcase.repair`` call for an answer that failed ``schema``."""
    variables = {
        "invalid_output": invalid_output or "(empty answer)",
        "errors": errors or ["the answer is not valid"],
        "schema": schema,
        "task": task,
        "language": language,
    }
    return {
        "prompt": {"name": REPAIR_PROMPT, "variables": variables},
        "response_format": {"type": "json_schema", "json_schema": {"name": schema_name, "schema": schema}},
    }
