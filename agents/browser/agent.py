"""Everything the browser runner stands on in one process: pool, policy, store, model, metrics.

Built once per process (``aitp serve`` or ``aitp worker``); runs of one
worker process share its pool. :meth:`BrowserAgent.close` stops the browsers.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from core.clock import Clock
from core.errors import NotFound
from core.outbound import OutboundPolicy
from core.settings import Settings

from ..llm import AgentLLM
from ..tasks.context import TaskContext
from .heal import Healer, HealSettings
from .metrics import BrowserMetrics
from .model import BrowserModel
from .pool import ChromiumPool
from .runner import BrowserRunner
from .spec import Spec
from .store import BrowserStore

_ARTIFACT = re.compile(r"^(?:[A-Za-z0-9][A-Za-z0-9_-]{0,31}/){0,2}[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(slots=True)
class BrowserAgent:
    settings: Settings
    pool: ChromiumPool
    runner: BrowserRunner
    store: BrowserStore
    model: BrowserModel
    metrics: BrowserMetrics

    @property
    def runs_dir(self) -> Path:
        return self.settings.data_dir / "browser" / "runs"

    def run_dir(self, task_id: str) -> Path:
        return self.runs_dir / task_id

    def artifact_path(self, task_id: str, name: str) -> Path:
        """The file of artefact ``name`` of a task's run; 404 for anything else (no path leaves the run's directory)."""
        base = self.run_dir(task_id).resolve()
        if not _ARTIFACT.match(name) or ".." in name:
            raise NotFound(f"no artefact '{name[:100]}' in task {task_id}; the result's 'artifacts' lists them")
        path = (base / name).resolve()
        if not path.is_relative_to(base) or not path.is_file():
            raise NotFound(f"no artefact '{name[:100]}' in task {task_id}; the result's 'artifacts' lists them")
        return path

    def healer(self, ctx: TaskContext | None) -> Healer:
        browser = self.settings.browser
        heal = HealSettings(
            browser.heal_threshold, browser.heal_margin, browser.snapshot_elements, browser.snapshot_text_chars
        )
        ask = self.model.heal_asker(ctx) if ctx is not None and browser.heal_with_llm else None
        return Healer(heal, ask)

    def usage(self) -> dict[str, Any]:
        """The pool's use now, with its caps (the monitor and this process's entry in the worker list)."""
        stats, settings = self.pool.stats(), self.settings.browser
        return {
            "in_use": stats.in_use,  # runs holding a browser context now
            "cap": settings.max_browsers * settings.contexts_per_browser,  # runs that may hold one at once
            "queued": stats.queued,
            "queue_cap": settings.queue_size,
            "browsers": stats.browsers,
            "max_browsers": settings.max_browsers,
            "peak_browsers": stats.peak_browsers,
            "launched": stats.launched,
            "recycled": stats.recycled,
            "breaker_open": stats.breaker_open,
        }

    async def close(self) -> None:
        await self.pool.close()


def spec_key(spec: Spec) -> str:
    """Where an unsaved spec's fingerprints and heals are kept: its name and base URL, hashed."""
    return "adhoc-" + hashlib.sha256(f"{spec.name}\n{spec.base_url}".encode()).hexdigest()[:32]


def build_browser(
    settings: Settings, db: AsyncEngine, clock: Clock, llm: AgentLLM, registry: CollectorRegistry
) -> BrowserAgent:
    metrics = BrowserMetrics(registry)
    pool = ChromiumPool(settings.browser, metrics)
    store = BrowserStore(db, clock)
    runner = BrowserRunner(settings.browser, pool, OutboundPolicy(settings.outbound), store, metrics)
    return BrowserAgent(settings, pool, runner, store, BrowserModel(llm), metrics)
