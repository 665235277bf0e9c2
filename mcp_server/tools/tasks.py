"""Task tools: status, list, cancel and review (with elicitation where the client supports it)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from mcp.server import MCPServer
from mcp.server.mcpserver import Context, Elicit, Resolve
from pydantic import BaseModel, Field

from ..caller import Caller
from ..errors import domain_errors
from ..models import TaskList, TaskStatus
from ..platform import Platform
from ..sizing import decode_cursor, encode_cursor
from ..views import settled_status, task_status

TaskId = Annotated[str, Field(min_length=1, max_length=64, description="the task's id")]
Decision = Literal["approve", "reject", "correct"]
_ACTIONS = {"approve": "approved", "reject": "rejected", "correct": "corrected"}


class ReviewAnswer(BaseModel):
    """What the person in the IDE decides."""

    decision: Literal["approve", "reject"] = Field(description="approve the result, or reject it")
    feedback: str = Field(default="", max_length=20_000, description="why; a rejection's feedback steers the rework")


def _ask_reviewer(decision: Decision | None = None, feedback: str | None = None) -> ReviewAnswer | Elicit[ReviewAnswer]:
    # Arguments win: clients without elicitation pass the decision; others are asked.
    if decision in ("approve", "reject"):
        return ReviewAnswer(decision=decision, feedback=feedback or "")
    if decision == "correct":
        return ReviewAnswer(decision="approve", feedback=feedback or "")  # the corrected body carries the decision
    return Elicit("Review the task's result (see awaiting_review in get_task_status): approve or reject?", ReviewAnswer)


def register(server: MCPServer, platform: Platform, caller: Caller, budget_tokens: int) -> None:
    @server.tool(title="Task status")
    @domain_errors
    async def get_task_status(task_id: TaskId, ctx: Context) -> TaskStatus:
        """Status, progress, current step, what awaits review, the error with its fix, and a result summary."""
        principal = caller(ctx)
        return await settled_status(platform, principal, await platform.tasks.get(principal, task_id), budget_tokens)

    @server.tool(title="List tasks")
    @domain_errors
    async def list_tasks(
        ctx: Context,
        status: Annotated[
            Literal["pending", "running", "reviewing", "succeeded", "failed", "cancelled"] | None,
            Field(description="only tasks in this status"),
        ] = None,
        kind: Annotated[str | None, Field(max_length=64, description="only this kind, e.g. testcase.generate")] = None,
        limit: Annotated[int, Field(ge=1, le=50, description="tasks per page")] = 10,
        cursor: Annotated[str | None, Field(max_length=200, description="next_cursor of the previous page")] = None,
    ) -> TaskList:
        """The project's tasks, newest first."""
        offset = decode_cursor(cursor)
        found = await platform.tasks.list(caller(ctx), status, kind, limit, offset)
        items = [task_status(view, budget_tokens // max(limit, 1)) for view in found["items"]]
        more = offset + len(items) < found["total"]
        return TaskList(
            total=found["total"], items=items, next_cursor=encode_cursor(offset + len(items)) if more else None
        )

    @server.tool(title="Cancel a task")
    @domain_errors
    async def cancel_task(task_id: TaskId, ctx: Context) -> TaskStatus:
        """Cancel a pending, running or reviewing task (a running step stops at its next checkpoint)."""
        return task_status(await platform.tasks.cancel(caller(ctx), task_id), budget_tokens)

    @server.tool(title="Review a task")
    @domain_errors
    async def review_task(
        task_id: TaskId,
        answer: Annotated[ReviewAnswer, Resolve(_ask_reviewer)],
        ctx: Context,
        decision: Annotated[
            Decision | None,
            Field(description="approve, reject or correct; leave out to be asked in the IDE (elicitation)"),
        ] = None,
        feedback: Annotated[str | None, Field(max_length=20_000, description="why; steers a rework")] = None,
        corrected_body: Annotated[
            Any, Field(description="with decision 'correct': the corrected result (e.g. the script or spec)")
        ] = None,
    ) -> TaskStatus:
        """Resume a task parked for human review: the same durable review as POST /api/tasks/{id}/review."""
        principal = caller(ctx)
        action = _ACTIONS["correct" if decision == "correct" else answer.decision]
        reviewed = await platform.tasks.review(
            principal, task_id, action, feedback=answer.feedback or feedback or None, corrected_body=corrected_body
        )
        return task_status(reviewed, budget_tokens)
