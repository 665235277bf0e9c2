"""``system.sleep``: a task that only waits, recording each execution, for smoke and chaos tests."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .context import TaskContext
from .kinds import Kind, TransientError


class SleepInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seconds: float = Field(default=0.0, ge=0, le=600, description="how long to wait")
    fail_times: int = Field(default=0, ge=0, le=10, description="raise a transient error on the first N attempts")
    review: bool = Field(default=False, description="pause for a human review after waiting")


async def sleep_task(ctx: TaskContext, spec: SleepInput) -> dict[str, Any]:
    started = time.monotonic()
    await ctx.emit("execution_started", {"attempt": ctx.attempt, "pid": os.getpid()})
    if ctx.attempt <= spec.fail_times:
        raise TransientError(f"planned transient failure on attempt {ctx.attempt} of {spec.fail_times}")
    if spec.seconds > 0:
        await ctx.step("sleeping", 10)
    deadline = started + spec.seconds
    # Short naps, so that a cancel (seen by the heartbeat) stops the wait promptly.
    while (left := deadline - time.monotonic()) > 0:
        await asyncio.sleep(min(left, 0.1))
        ctx.check_cancelled()
    if spec.review and ctx.review is None:
        await ctx.pause_for_review({"question": f"approve a nap of {spec.seconds} s?"})
    return {"slept_s": spec.seconds, "attempt": ctx.attempt, "pid": os.getpid(), "review": ctx.review}


SLEEP = Kind(
    name="system.sleep",
    input_model=SleepInput,
    run=sleep_task,
    description="waits `seconds`, failing transiently on the first `fail_times` attempts; records every execution",
)
