"""Builds what task kinds need (gateway core, knowledge base, stores) and the kinds themselves.

Used by ``aitp serve`` (embedded mode runs tasks in process) and by
``aitp worker``: both get the same kinds, wired to the same services.
"""

from __future__ import annotations

import logging
import time
import uuid

from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from core.identity.principal import Principal
from core.settings import Settings
from gateway.assembly import GatewayCore
from gateway.chat import CallContext

from .automation.workflow import automation_kind
from .browser.agent import build_browser
from .browser.task import browser_kind
from .kb import KnowledgeBase, create_embedder
from .kb.ingest_task import kb_ingest_kind
from .llm import AgentLLM
from .services import AgentServices
from .tasks.kinds import KindRegistry
from .tasks.system import SLEEP
from .testcases.generate import testcase_kind
from .testcases.metrics import GenerationMetrics
from .testcases.store import TestCaseStore

log = logging.getLogger("aitp.agents.assembly")


def build_services(
    settings: Settings, db: AsyncEngine, core: GatewayCore, registry: CollectorRegistry
) -> AgentServices:
    """The agents' services, on the gateway core's clock so that every row of a process has one time source."""
    if settings.redis_url and not settings.chroma_url:
        log.warning(
            "distributed mode (AITP_REDIS_URL) with an embedded knowledge base: set AITP_CHROMA_URL so that "
            "the API and every worker share one Chroma server; embedded Chroma must be opened by one process only"
        )

    async def gateway_embed(project_id: str, model: str, texts: list[str]) -> list[list[float]]:
        # Knowledge-base embeddings spend under the project, like any other call of the project.
        ctx = CallContext(
            request_id=f"kb-{uuid.uuid4().hex[:16]}",
            started=time.perf_counter(),
            principal=Principal(key_id="kb", project_id=project_id, role="member"),
        )
        return await core.embeddings.embed(model, texts, ctx)

    kb = KnowledgeBase(settings, db, create_embedder(settings, gateway_embed), core.clock)
    llm = AgentLLM(core.chat, core.catalog, settings.generation)
    return AgentServices(
        settings=settings,
        clock=core.clock,
        db=db,
        gateway=core,
        llm=llm,
        kb=kb,
        testcases=TestCaseStore(db, core.clock),
        metrics=GenerationMetrics(registry),
        browser=build_browser(settings, db, core.clock, llm, registry),
    )


def build_kinds(services: AgentServices) -> KindRegistry:
    return KindRegistry(
        [
            SLEEP,
            testcase_kind(services),
            automation_kind(services),
            kb_ingest_kind(services.kb),
            browser_kind(services.browser, services.settings.tasks.max_attempts),
        ]
    )
