"""Task views turned into what an assistant needs: status, what to do next, the error's fix, a short result."""

from __future__ import annotations

from typing import Any

from agents.testcases.schemas import DRAFT_LABELS
from core.identity.principal import Principal
from gateway.task_costs import TaskCost

from .models import Cost, TaskError, TaskStatus
from .platform import Platform
from .sizing import cut

_NEXT = {
    "pending": "the task is queued; call get_task_status again in a few seconds",
    "running": "the task is running; call get_task_status again, or pass wait_seconds to wait for it",
    "reviewing": "the task waits for a human review: call review_task (approve, reject with feedback, or correct)",
    "failed": "the task failed; read error.hint, fix the input and submit again",
    "cancelled": "the task was cancelled; submit it again to retry",
}


def task_status(view: dict[str, Any], budget_tokens: int, cost: TaskCost | None = None) -> TaskStatus:
    status = view["status"]
    error = view.get("error")
    result = view.get("result") if isinstance(view.get("result"), dict) else None
    awaiting = None
    if status == "reviewing" and view.get("interrupt_data") is not None:
        awaiting = _sized(view["interrupt_data"], budget_tokens // 2, f"read task://{view['id']} for all of it")
    return TaskStatus(
        id=view["id"],
        kind=view["kind"],
        status=status,
        progress=int(view.get("progress") or 0),
        current_step=view.get("current_step"),
        created_at=view.get("created_at"),
        finished_at=view.get("finished_at"),
        error=TaskError.model_validate(error) if isinstance(error, dict) and error.get("message") else None,
        awaiting_review=awaiting,
        summary=_with_cost(_summary(view["kind"], result), cost) if status == "succeeded" else None,
        cost=Cost(tokens=cost.tokens, cost_usd=cost.cost_usd, calls_by_tier=cost.calls_by_tier) if cost else None,
        next=_next(view["kind"], status),
    )


def _with_cost(summary: str | None, cost: TaskCost | None) -> str | None:
    if cost is None:
        return summary
    return f"{summary}, {cost.line()}" if summary else cost.line()


async def settled_status(
    platform: Platform, principal: Principal, view: dict[str, Any], budget_tokens: int
) -> TaskStatus:
    """The status, with the task's exact cost once it has finished or parked."""
    cost = await platform.costs.of(principal, view["id"]) if view["status"] in _COSTED else None
    return task_status(view, budget_tokens, cost)


_COSTED = frozenset({"reviewing", "succeeded", "failed", "cancelled"})


def _next(kind: str, status: str) -> str:
    if status == "succeeded":
        if kind == "testcase.generate":
            return "read the cases with get_test_cases, review them with review_test_cases, then export_test_cases"
        return "done; the result is in task://<id>"
    return _NEXT.get(status, "")


def _summary(kind: str, result: dict[str, Any] | None) -> str | None:
    if result is None:
        return None
    if kind == "testcase.generate":
        cases = result.get("case_count", len(result.get("cases") or []))
        coverage = result.get("coverage")
        ratio = coverage.get("ratio") if isinstance(coverage, dict) else None
        covered = f", {ratio:.0%} of requirement points covered" if isinstance(ratio, int | float) else ""
        source = result.get("source")
        summary = f"{cases} cases{covered}" + (f" ({source})" if source else "")
        if result.get("draft"):
            summary += f"; {result.get('label') or DRAFT_LABELS['en']}"
        dropped = result.get("dropped")
        if isinstance(dropped, dict) and dropped:
            summary += "; left out by max_cases: " + ", ".join(f"{t} {n}" for t, n in sorted(dropped.items()))
        return summary
    keys = ", ".join(sorted(result)[:8])
    return f"result fields: {keys}"


def _sized(value: Any, budget_tokens: int, how: str) -> Any:
    if isinstance(value, str):
        return cut(value, budget_tokens, how)[0]
    if isinstance(value, dict):
        return {k: _sized(v, max(budget_tokens // max(len(value), 1), 200), how) for k, v in value.items()}
    if isinstance(value, list):
        return [_sized(v, max(budget_tokens // max(len(value), 1), 200), how) for v in value[:50]]
    return value
