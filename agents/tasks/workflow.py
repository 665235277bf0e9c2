"""Checkpointed steps: a workflow that resumes at its last finished step.

A kind that runs several expensive steps (model calls above all) wraps each
in :meth:`Workflow.step`. The step's JSON-able result is saved in the task's
checkpoint as soon as it finishes; an execution that starts again after a
crash, a lease loss, a restart or a review reads the checkpoint and returns
saved results instead of running those steps again. So a model call whose
step finished is never paid for twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from .context import TaskContext

T = TypeVar("T")


class Workflow:
    def __init__(self, ctx: TaskContext) -> None:
        self.ctx = ctx
        saved = ctx.checkpoint if isinstance(ctx.checkpoint, dict) else {}
        self.results: dict[str, Any] = dict(saved.get("results") or {})
        self.done: list[str] = list(saved.get("done") or [])
        self.resumed_from: str | None = self.done[-1] if self.done else None

    def finished(self, name: str) -> bool:
        return name in self.done

    async def step(self, name: str, progress: int, run: Callable[[], Awaitable[T]]) -> T:
        """Run step ``name`` once: its saved result if it already finished, else run it and save the result."""
        if name in self.done:
            return self.results[name]  # type: ignore[no-any-return]
        await self.ctx.step(name, progress)
        value = await run()
        self.results[name] = value
        self.done.append(name)
        await self.ctx.save_checkpoint({"done": self.done, "results": self.results})
        return value

    async def forget(self, *names: str) -> None:
        """Mark steps as not finished (to run them again, e.g. after a reviewer rejected their output)."""
        for name in names:
            self.results.pop(name, None)
            if name in self.done:
                self.done.remove(name)
        await self.ctx.save_checkpoint({"done": self.done, "results": self.results})
