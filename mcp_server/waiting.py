"""Long tools wait for their task (up to ``wait_seconds``) and relay its progress as MCP notifications."""

from __future__ import annotations

import time
from typing import Any

from mcp.server.mcpserver import Context

from agents.tasks.events import TERMINAL_TYPES
from core.identity.principal import Principal

from .platform import Platform

SETTLED = frozenset({"reviewing", "succeeded", "failed", "cancelled"})


async def wait_for_task(
    platform: Platform, principal: Principal, task: dict[str, Any], wait_seconds: float, ctx: Context[Any, Any]
) -> dict[str, Any]:
    """The task once it finishes or parks for review, or as it is when the wait runs out."""
    if wait_seconds <= 0 or task["status"] in SETTLED:
        return task
    deadline = time.monotonic() + wait_seconds
    # Subscribe before reading again, so an event between the read and the subscription is not missed.
    with platform.bus.subscribe(task["project"]) as events:
        task = await platform.tasks.get(principal, task["id"])
        await _progress(ctx, task)
        while task["status"] not in SETTLED:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            event = await events.get(timeout=min(left, 1.0))
            if event is not None and event.task_id != task["id"]:
                continue
            # Events say that something changed; the row says what (and covers a missed event).
            task = await platform.tasks.get(principal, task["id"])
            await _progress(ctx, task)
            if event is not None and event.type in TERMINAL_TYPES:
                break
    return task


async def _progress(ctx: Context[Any, Any], task: dict[str, Any]) -> None:
    step = task.get("current_step") or task["status"]
    await ctx.report_progress(float(task.get("progress") or 0), 100.0, f"{task['kind']}: {step}")
