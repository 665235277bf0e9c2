"""Browser operations for every interface (REST, MCP): run, results, artefacts, inspect, specs, export.

Any key of a project reads its runs and specs; running, inspecting and
changing specs need a member or admin key. Another project's task or spec
answers 404, exactly like a missing one. A stored spec changes only through
these methods (a heal is a suggestion until a patch accepts it).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from core.errors import InvalidRequest, NotFound
from core.identity.principal import Principal
from core.validation import check_int, check_text, parse

from ..tasks.service import TaskService
from .agent import BrowserAgent
from .export import to_pytest
from .pool import BrowserUnavailable, PoolSaturated
from .spec import Locator, parse_spec
from .task import KIND, BrowserRunInput

WRITER = "it can read browser runs and specs but not run or change them"
MAX_PAGE = 200


class StepPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    index: int = Field(ge=0, le=1000)
    target: list[Locator] = Field(min_length=1, max_length=10, description="the step's new alternatives")


class SpecPatch(BaseModel):
    """Accepted fixes: new targets for some steps, and/or every heal cached for the spec."""

    model_config = ConfigDict(extra="forbid")

    steps: list[StepPatch] = Field(default_factory=list, max_length=200)
    accept_heals: bool = Field(default=False, description="put each cached heal's locator first in its step")


class SpecBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    spec: dict[str, Any] | str


class InspectRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=2000, description="the page to list the elements of")
    max_elements: int | None = Field(default=None, ge=1, le=1000)


class BrowserService:
    def __init__(self, agent: BrowserAgent, tasks: TaskService) -> None:
        self.agent = agent
        self.tasks = tasks

    async def run(
        self, principal: Principal, data: dict[str, Any], idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Submit a ``browser.run`` task; fails fast (503 + Retry-After) when this process's pool refuses runs."""
        principal.require_role("member", WRITER)
        parse(BrowserRunInput, data)
        if not self.tasks.runtime.distributed:  # the browsers are in this process: ask the pool before queueing
            stats, settings = self.agent.pool.stats(), self.agent.settings.browser
            if stats.breaker_open:
                raise BrowserUnavailable(
                    "browsers keep failing to launch; the pool refuses runs for now", settings.breaker_open_s
                )
            if stats.queued >= settings.queue_size:
                raise PoolSaturated(
                    f"the browser pool is saturated ({stats.queued} runs wait); retry later", settings.queue_wait_s / 4
                )
        task, _ = await self.tasks.submit(principal, KIND, data, idempotency_key)
        return task

    async def results(self, principal: Principal, task_id: str) -> dict[str, Any]:
        task = await self._browser_task(principal, task_id)
        result = task.get("result") or {}
        links = [f"/api/tasks/{task['id']}/artifacts/{name}" for r in result.get("runs", []) for name in r["artifacts"]]
        return {
            "task": {k: task.get(k) for k in ("id", "status", "progress", "current_step", "error")},
            "result": result or None,
            "artifact_urls": links,
        }

    async def artifact(self, principal: Principal, task_id: str, name: str) -> Path:
        task = await self._browser_task(principal, task_id)
        return self.agent.artifact_path(task["id"], check_text(name, "name", 300))

    async def inspect(self, principal: Principal, url: str, max_elements: int | None = None) -> dict[str, Any]:
        """The page's interactive elements with their best locators and tiers (opens the page in the pool)."""
        principal.require_role("member", WRITER)
        limit = check_int(max_elements or self.agent.settings.browser.snapshot_elements, "max_elements", 1, 1000)
        return await self.agent.runner.inspect(check_text(url, "url", 2000), limit)

    # -- specs ---------------------------------------------------------------------------------------------------

    async def create_spec(self, principal: Principal, data: dict[str, Any]) -> dict[str, Any]:
        principal.require_role("member", WRITER)
        spec = parse_spec(parse(SpecBody, data).spec)
        return await self.agent.store.create_spec(principal.project_id, spec.name, spec.model_dump(mode="json"))

    async def list_specs(self, principal: Principal, limit: int = 50, offset: int = 0) -> dict[str, Any]:
        check_int(limit, "limit", 1, MAX_PAGE)
        check_int(offset, "offset", 0, 10**9)
        total, items = await self.agent.store.list_specs(principal.scope(), limit, offset)
        return {"total": total, "items": items, "limit": limit, "offset": offset}

    async def get_spec(self, principal: Principal, spec_id: str) -> dict[str, Any]:
        found = await self.agent.store.get_spec(check_text(spec_id, "spec_id", 64), principal.scope())
        found["heals"] = list((await self.agent.store.heals(found["project"], found["id"])).values())
        return found

    async def replace_spec(self, principal: Principal, spec_id: str, data: dict[str, Any]) -> dict[str, Any]:
        principal.require_role("member", WRITER)
        spec = parse_spec(parse(SpecBody, data).spec)
        return await self.agent.store.replace_spec(spec_id, principal.scope(), spec.name, spec.model_dump(mode="json"))

    async def delete_spec(self, principal: Principal, spec_id: str) -> None:
        principal.require_role("member", WRITER)
        await self.agent.store.delete_spec(check_text(spec_id, "spec_id", 64), principal.scope())

    async def patch_spec(self, principal: Principal, spec_id: str, data: dict[str, Any]) -> dict[str, Any]:
        """Accept fixes: the named steps get new targets; ``accept_heals`` applies every cached heal."""
        principal.require_role("member", WRITER)
        patch = parse(SpecPatch, data)
        current = await self.agent.store.get_spec(check_text(spec_id, "spec_id", 64), principal.scope())
        body = dict(current["spec"])
        steps = [dict(s) for s in body["steps"]]
        changes = {p.index: [loc.plain() for loc in p.target] for p in patch.steps}
        if patch.accept_heals:
            for index, heal in (await self.agent.store.heals(current["project"], spec_id)).items():
                if index < len(steps) and index not in changes:
                    rest = [t for t in steps[index].get("target", []) if t != heal["old_locator"]]
                    changes[index] = [heal["new_locator"], *rest]
        if not changes:
            raise InvalidRequest(
                "the patch changes nothing: give steps, or accept_heals with heals cached", param="steps"
            )
        for index, target in changes.items():
            if index >= len(steps):
                raise InvalidRequest(f"steps: the spec has {len(steps)} steps, there is no step {index}", param="steps")
            steps[index]["target"] = target
        spec = parse_spec({**body, "steps": steps})
        return await self.agent.store.replace_spec(spec_id, principal.scope(), spec.name, spec.model_dump(mode="json"))

    async def export(self, principal: Principal, spec_id: str, format: str) -> tuple[str, str]:
        """``(file text, file name)`` of a stored spec as a standalone test."""
        if format != "pytest":
            raise InvalidRequest(f"format must be 'pytest', got {format!r}", param="format")
        found = await self.agent.store.get_spec(check_text(spec_id, "spec_id", 64), principal.scope())
        spec = parse_spec(found["spec"])
        name = "test_" + (re.sub(r"[^a-z0-9]+", "_", spec.name.lower()).strip("_")[:40] or found["id"][:8]) + ".py"
        return to_pytest(spec, name, self.agent.settings.browser.step_budget_s), name

    async def _browser_task(self, principal: Principal, task_id: str) -> dict[str, Any]:
        task = await self.tasks.get(principal, task_id)
        if task["kind"] != KIND:
            raise NotFound(f"task {task_id} is a {task['kind']} task, not a browser run")
        return task
