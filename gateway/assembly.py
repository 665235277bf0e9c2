"""The gateway core of one process: the parts that make a model call routed, budgeted and recorded.

``aitp serve`` builds one and puts HTTP routes in front of it; ``aitp worker``
builds one too, so that agents call models in process exactly like an API
client would (same routing, budgets, ledger and usage rows).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import random
from dataclasses import dataclass

from opentelemetry.trace import Tracer
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from core.clock import Clock
from core.settings import Settings

from .budgets.alerts import AlertSink
from .budgets.enforcer import BudgetEnforcer
from .budgets.rebuild import BudgetUsageRecord
from .budgets.store import BudgetStore
from .catalog import Catalog, build_catalog
from .chat import ChatService, EngineRef
from .embeddings import EmbeddingService
from .engine import load_engine
from .ledger import Ledger, create_ledger
from .metrics import GatewayMetrics
from .prompts import PromptRegistry
from .prompts.sandbox import RenderLimits
from .routing import RoutingPolicy
from .settlements import Settlements
from .usage import UsageRecorder

log = logging.getLogger("aitp.gateway.assembly")


@dataclass(slots=True)
class GatewayCore:
    settings: Settings
    clock: Clock
    catalog: Catalog
    engine_ref: EngineRef
    recorder: UsageRecorder
    ledger: Ledger
    alerts: AlertSink
    budget_store: BudgetStore
    enforcer: BudgetEnforcer
    settlements: Settlements
    prompts: PromptRegistry
    chat: ChatService
    embeddings: EmbeddingService
    metrics: GatewayMetrics

    def load_engine(self) -> asyncio.Future[object]:
        """Start loading litellm in a thread; callers of the chat service wait for it."""
        self.engine_ref.loading = True
        loading = asyncio.get_running_loop().run_in_executor(
            None, load_engine, self.catalog, self.settings.retries, self.clock
        )
        loading.add_done_callback(self.engine_ref.resolve)
        # litellm leaves ~400k long-lived objects; a full collection over them stalls every request for
        # ~200 ms. Frozen, the collector skips them.
        loading.add_done_callback(lambda _: gc.freeze())
        return loading  # type: ignore[return-value]

    async def start(self) -> None:
        await self.recorder.start()
        await self.settlements.start()

    async def stop(self) -> None:
        await self.settlements.stop()
        await self.recorder.stop()
        await self.alerts.drain()
        await self.ledger.close()


def build_gateway_core(
    settings: Settings,
    db: AsyncEngine,
    redis_client: Redis | None,
    registry: CollectorRegistry,
    clock: Clock,
    tracer: Tracer | None = None,
) -> GatewayCore:
    metrics = GatewayMetrics(registry)
    catalog = build_catalog(settings, os.environ)
    ledger = create_ledger(
        database=db,
        redis_client=redis_client,
        prefix=settings.redis_prefix,
        tz=settings.budgets.timezone,
        clock=clock,
        # usage_records are the truth; a Redis that lost its counters rebuilds them from the rows
        record=BudgetUsageRecord(db),
    )
    recorder = UsageRecorder(db, settings.usage, settings.data_dir / "usage-unwritten.jsonl")
    engine_ref = EngineRef()
    budget_store = BudgetStore(db, settings.budgets.timezone, clock)
    alerts = AlertSink(db, registry, settings.budgets.alert_webhook_url, settings.budgets.webhook_attempts, clock)
    settlements = Settlements(registry)
    enforcer = BudgetEnforcer(budget_store, ledger, alerts, settings.budgets, registry, settlements, clock)
    prompts = PromptRegistry(
        db,
        clock=clock,
        rng=random.Random(settings.prompts.random_seed),
        cache_size=settings.prompts.cache_versions,
        limits=RenderLimits.of(settings.prompts),
    )
    chat = ChatService(
        engine_ref,
        catalog,
        RoutingPolicy(settings.routing, catalog),
        recorder,
        metrics,
        enforcer,
        clock,
        prompts,
        tracer,
    )
    embeddings = EmbeddingService(engine_ref, catalog, recorder, enforcer, metrics, clock, tracer)
    return GatewayCore(
        settings=settings,
        clock=clock,
        catalog=catalog,
        engine_ref=engine_ref,
        recorder=recorder,
        ledger=ledger,
        alerts=alerts,
        budget_store=budget_store,
        enforcer=enforcer,
        settlements=settlements,
        prompts=prompts,
        chat=chat,
        embeddings=embeddings,
        metrics=metrics,
    )
