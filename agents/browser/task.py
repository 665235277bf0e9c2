"""``browser.run``: one spec, a suite of specs, a stored spec, or a description with a start URL.

The task's result gives every run's steps, tiers, heals and artefacts, and
``junit.xml`` for the whole suite. A failing test is a succeeded task whose
result says ``failed``; the task itself fails only when nothing could run
(the pool refused every attempt, the plan was invalid ...).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.errors import InvalidRequest

from ..tasks.context import TaskContext
from ..tasks.kinds import Kind, TaskError, TransientError
from .agent import BrowserAgent, spec_key
from .junit import junit_xml
from .pool import PoolSaturated
from .spec import parse_spec

KIND = "browser.run"
MAX_SUITE = 50


class BrowserRunInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    spec: dict[str, Any] | str | None = Field(default=None, description="a spec (object, or YAML/JSON text)")
    specs: list[dict[str, Any] | str] | None = Field(default=None, max_length=MAX_SUITE, description="a suite")
    spec_id: str | None = Field(default=None, pattern=r"^[0-9a-f]{32}$", description="a stored spec")
    description: str | None = Field(default=None, min_length=1, max_length=5000, description="what to test")
    url: str | None = Field(default=None, max_length=2000, description="with description: where to start")
    language: str = Field(default="zh", pattern=r"^(zh|en)$")
    max_steps: int = Field(default=10, ge=1, le=50)

    @model_validator(mode="after")
    def _one_source(self) -> BrowserRunInput:
        given = [n for n in ("spec", "specs", "spec_id", "description") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of spec, specs, spec_id or description (with url)")
        if self.description is not None and not self.url:
            raise ValueError("a description needs the url to start from")
        for text in [self.spec] if self.spec is not None else list(self.specs or []):
            try:
                parse_spec(text)
            except InvalidRequest as exc:
                raise ValueError(exc.message) from None
        return self


def browser_kind(agent: BrowserAgent, max_attempts: int) -> Kind:
    async def run(ctx: TaskContext, task: BrowserRunInput) -> dict[str, Any]:
        await ctx.step("preparing", 2)
        generated: dict[str, Any] | None = None
        if task.spec_id is not None:
            stored = await agent.store.get_spec(task.spec_id, ctx.project_id)
            specs = [(parse_spec(stored["spec"]), task.spec_id)]
        elif task.description is not None:
            await ctx.step("planning", 5)
            page = await _pooled(ctx, max_attempts, agent.runner.snapshot(str(task.url)))
            spec, notes = await agent.model.plan(
                ctx, task.description, str(task.url), page, task.language, task.max_steps
            )
            generated = {"spec": spec.public(), **notes}
            specs = [(spec, spec_key(spec))]
        else:
            parsed = [parse_spec(s) for s in ([task.spec] if task.spec is not None else list(task.specs or []))]
            specs = [(spec, spec_key(spec)) for spec in parsed]
        suite = len(specs) > 1
        runs = []
        base = agent.run_dir(ctx.task_id)
        for index, (spec, key) in enumerate(specs):
            await ctx.step(f"running {spec.name[:100]}", 10 + 85 * index // len(specs))
            prefix = f"s{index + 1:02d}/" if suite else ""
            run_dir = base / prefix if suite else base
            result = await _pooled(
                ctx, max_attempts, agent.runner.run(ctx.project_id, spec, key, run_dir, agent.healer(ctx))
            )
            result["artifacts"] = [prefix + name for name in result["artifacts"]]
            for step in result["steps"]:
                if step.get("screenshot"):
                    step["screenshot"] = prefix + step["screenshot"]
            runs.append(result)
        suite_name = specs[0][0].name if not suite else f"{len(specs)} browser specs"
        _write(base / "junit.xml", junit_xml(suite_name, runs))
        tiers = {t: sum(r["tiers"][t] for r in runs) for t in ("gold", "silver", "bronze")}
        return {
            "status": "failed" if any(r["status"] == "failed" for r in runs) else "passed",
            "runs": runs,
            "tiers": tiers,
            "healed_steps": sum(r["healed"] for r in runs),
            "tier_drops": sum(r["tier_drops"] for r in runs),
            "junit": "junit.xml",
            "generated_spec": generated,
        }

    return Kind(
        name=KIND,
        input_model=BrowserRunInput,
        run=run,
        description="runs browser test specs in a pooled Chromium: steps, tiers, heals, screenshots, trace, JUnit",
    )


async def _pooled(ctx: TaskContext, max_attempts: int, call: Any) -> Any:
    """``await call``; a refusal by the pool is retried later while attempts remain, then fails the task."""
    try:
        return await call
    except PoolSaturated as exc:
        if ctx.attempt < max_attempts:
            raise TransientError(exc.message) from None
        raise TaskError(
            exc.message, type=exc.code or "browser_pool_saturated", hint="submit the run again later"
        ) from None


def _write(path: Any, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
