"""The platform of one process, built once: the service objects every interface calls, and what they stand on.

``aitp serve`` builds a :class:`Platform` and puts HTTP in front of its
:class:`Services` (REST handlers, the MCP app at ``/mcp``); ``aitp mcp``
builds the same with :func:`build_platform` and serves them over stdio. Both
get the same instances wired the same way, so a rule holds on every interface.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from core.clock import Clock, SystemClock
from core.datadir import hold_embedded
from core.db import create_engine, migrate
from core.identity.audit import AuditLog
from core.identity.keys import KeyStore
from core.identity.principal import Principal
from core.identity.projects import ProjectStore
from core.identity.routes import Identity
from core.outbound import OutboundPolicy
from core.process_metrics import register_process_metrics
from core.redis import create_redis
from core.settings import Settings
from core.tracing import Tracing
from gateway.assembly import GatewayCore, build_gateway_core
from gateway.budgets.service import BudgetService
from gateway.pricing import Price
from gateway.prompts import PromptFileError, default_directory, load_directory
from gateway.prompts.loader import audit_changes
from gateway.prompts.service import PromptService
from gateway.reports import UsageReports
from gateway.task_costs import TaskCosts

from .assembly import build_kinds, build_services
from .automation.service import AutomationService
from .automation.store import AutomationStore
from .browser.service import BrowserService
from .insights import ArtefactCosts, MonitorService
from .kb.service import KnowledgeService
from .services import AgentServices
from .tasks.events import LocalBus
from .tasks.runtime import TaskRuntime
from .tasks.service import TaskService
from .testcases.service import TestCaseService

log = logging.getLogger("aitp.agents.platform")
USE_THE_RUNNING_SERVER = (
    "Point this process at the running one instead (aitp mcp --url http://127.0.0.1:8000/mcp), "
    "or give each its own AITP_DATA_DIR"
)


@dataclass(frozen=True, slots=True)
class Services:
    """Every operation a user can perform, one object per area; each method takes the caller's Principal."""

    settings: Settings
    identity: Identity  # keys (authenticate), projects and the audit log
    tasks: TaskService
    testcases: TestCaseService
    knowledge: KnowledgeService
    automation: AutomationService
    browser: BrowserService
    prompts: PromptService
    budgets: BudgetService
    usage: UsageReports
    costs: TaskCosts  # what each task's model calls cost
    artefacts: ArtefactCosts  # cost per generated case, accepted case and browser run
    monitor: MonitorService  # gateway latency by route, the task queue, the process
    bus: LocalBus  # task events: progress for whoever waits on a task

    async def authenticate(self, key: str) -> Principal:
        """The principal of a key (``sk-aitp-…``), or a 401 Unauthorized naming why not."""
        return await self.identity.keys.authenticate(f"Bearer {key}")


def resolve_admin_key(settings: Settings) -> str:
    """The admin key; in --dev mode without AITP_ADMIN_KEY one is generated once and kept in data_dir."""
    if settings.admin_key is not None:
        return settings.admin_key.get_secret_value()
    path = settings.data_dir / "dev-admin-key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("sk-aitp-dev-" + secrets.token_urlsafe(32) + "\n")
        path.chmod(0o600)
    log.warning("--dev mode: the admin key is in %s (set AITP_ADMIN_KEY to choose one)", path)
    return path.read_text().strip()


class Platform:
    """Database, Redis, gateway core, task engine, identity and the services on them; ``start``/``stop`` run it."""

    def __init__(self, settings: Settings, *, clock: Clock | None = None, tracing: Tracing | None = None) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        # Built here unless given (tests pass one with an in-memory exporter); the owner shuts it down.
        self._owns_tracing = tracing is None
        self.tracing = tracing or Tracing.from_settings(settings.tracing)
        self.registry = CollectorRegistry()
        register_process_metrics(self.registry, settings.data_dir)
        self.db = create_engine(
            settings.effective_database_url, settings.database_pool_size, settings.database_max_overflow
        )
        # Generous waits: under overload a request should queue for a connection, not fail.
        self.redis: Redis | None = (
            create_redis(settings.redis_url, settings.redis_max_connections, socket_timeout_s=5.0, pool_timeout_s=10.0)
            if settings.redis_url
            else None
        )
        self.gateway: GatewayCore = build_gateway_core(
            settings, self.db, self.redis, self.registry, self.clock, self.tracing.tracer
        )
        self.agents: AgentServices = build_services(settings, self.db, self.gateway, self.registry)
        self.runtime = TaskRuntime(
            settings, self.db, self.registry, clock=self.clock, kinds=build_kinds(self.agents), tracing=self.tracing
        )
        self.identity = Identity(
            keys=KeyStore(self.db, resolve_admin_key(settings), self.clock),
            projects=ProjectStore(self.db, self.clock),
            audit=AuditLog(self.db, self.clock),
            clock=self.clock,
        )
        self.services = self._services()
        self.db_ready = False
        self._held = contextlib.ExitStack()

    def _services(self) -> Services:
        core, agents, clock = self.gateway, self.agents, self.clock

        async def plus_price() -> Price:
            return (await core.engine_ref.get()).tier_price("plus")

        tasks = TaskService(self.runtime)
        usage = UsageReports(self.db, plus_price, clock)
        return Services(
            settings=self.settings,
            identity=self.identity,
            tasks=tasks,
            testcases=TestCaseService(agents.testcases, agents.kb, agents.metrics, self.runtime.store),
            knowledge=KnowledgeService(
                agents.kb, self.settings.kb.max_upload_bytes, tasks, outbound=OutboundPolicy(self.settings.outbound)
            ),
            automation=AutomationService(AutomationStore(self.db, clock)),
            browser=BrowserService(agents.browser, tasks),
            prompts=PromptService(core.prompts, self.identity, self.db, clock, agents.testcases.acceptance),
            budgets=BudgetService(
                self.identity,
                core.budget_store,
                core.enforcer,
                core.alerts,
                usage,
                clock,
                self.settings.budgets.timezone,
            ),
            usage=usage,
            costs=TaskCosts(self.db),
            artefacts=ArtefactCosts(self.db, usage),
            monitor=MonitorService(
                usage,
                self.runtime,
                core.ledger,
                self.settings.data_dir,
                clock,
                agents.browser.usage,
            ),
            bus=self.runtime.bus,
        )

    async def start(self, *, execute: bool | None = None) -> None:
        """Migrate, load prompt files, start the gateway and the task engine.

        ``execute`` runs tasks in this process; by default it does so in
        embedded mode (no Redis) and leaves them to ``aitp worker`` otherwise.
        """
        if not self.settings.chroma_url:
            # Embedded Chroma belongs to one process: a second one on this data directory stops here, saying why.
            path = Path(self.settings.kb.chroma_path or self.settings.data_dir / "chroma")
            self._held.enter_context(hold_embedded(path, USE_THE_RUNNING_SERVER))
        # litellm loads in a thread while migrations run (and, in `aitp serve`, requests arrive).
        self.gateway.load_engine()
        await migrate(self.db)
        await self.identity.projects.ensure_default()
        await self._load_prompts()
        self.db_ready = True
        await self.gateway.start()
        execute = not self.runtime.distributed if execute is None else execute
        self.runtime.report("browser_pool", self.agents.browser.usage)
        await self.runtime.start(execute=execute, threads=self.settings.tasks.embedded_threads)
        if self.gateway.catalog.disabled:
            log.warning("deployments disabled: %s", self.gateway.catalog.disabled)

    async def stop(self) -> None:
        await self.runtime.stop()
        await self.gateway.stop()
        await self.agents.kb.close()
        await self.agents.browser.close()
        if self.redis is not None:
            await self.redis.aclose()
        await self.db.dispose()
        self._held.close()
        if self._owns_tracing:
            self.tracing.shutdown()

    async def _load_prompts(self) -> None:
        directory = self.settings.prompts.directory or default_directory()
        if directory is None:
            log.warning("no prompts directory (./prompts or prompts.directory): the registry starts empty")
            return
        try:
            await load_directory(self.gateway.prompts, directory, on_change=audit_changes(self.identity.audit))
        except PromptFileError as exc:
            log.error("cannot start: %s", exc)
            raise RuntimeError(f"cannot load prompts: {exc}") from None


@contextlib.asynccontextmanager
async def build_platform(
    settings: Settings, *, execute: bool | None = None, clock: Clock | None = None, tracing: Tracing | None = None
) -> AsyncIterator[Services]:
    """The whole platform's services in this process, started, without HTTP; stopped on exit.

    For ``aitp mcp`` over stdio, scripts and tests. In embedded mode (no
    Redis) it runs tasks itself unless ``execute=False``; embedded Chroma and
    SQLite belong to one process, so do not run it beside an ``aitp serve``
    on the same data directory (use PostgreSQL, Redis and a Chroma server).
    """
    platform = Platform(settings, clock=clock, tracing=tracing)
    await platform.start(execute=execute)
    try:
        yield platform.services
    finally:
        await platform.stop()
