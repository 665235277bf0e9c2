"""Browser fixtures: the fixture site on 127.0.0.1, one shared pool, a runner on a fresh SQLite database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from agents.browser.heal import Healer, HealSettings
from agents.browser.metrics import BrowserMetrics
from agents.browser.pool import ChromiumPool
from agents.browser.runner import BrowserRunner
from agents.browser.store import BrowserStore
from core.clock import SystemClock
from core.db import create_engine, migrate
from core.outbound import OutboundPolicy
from core.settings import BrowserSettings, OutboundSettings
from tests.agents.browser.site import Site


@pytest.fixture(scope="session")
def site() -> Iterator[Site]:
    served = Site().start()
    yield served
    served.stop()


@dataclass
class Rig:
    runner: BrowserRunner
    pool: ChromiumPool
    store: BrowserStore
    metrics: BrowserMetrics
    registry: CollectorRegistry
    tmp: Path

    def healer(self) -> Healer:
        return Healer(HealSettings(0.6, 0.1, 50, 500), None)

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


@pytest.fixture(scope="module")
async def rig(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Rig]:
    tmp = tmp_path_factory.mktemp("browser")
    engine = create_engine(f"sqlite+aiosqlite:///{tmp / 'aitp.db'}")
    await migrate(engine)
    settings = BrowserSettings(max_browsers=2, navigation_timeout_s=3, step_budget_s=2)
    registry = CollectorRegistry()
    metrics = BrowserMetrics(registry)
    pool = ChromiumPool(settings, metrics)
    store = BrowserStore(engine, SystemClock())
    policy = OutboundPolicy(OutboundSettings(allow_loopback=True))
    yield Rig(BrowserRunner(settings, pool, policy, store, metrics), pool, store, metrics, registry, tmp)
    await pool.close()
    await engine.dispose()
