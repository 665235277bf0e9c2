"""What task kinds need from the rest of the platform, built once per process and passed down."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from core.clock import Clock
from core.settings import Settings
from gateway.assembly import GatewayCore
from gateway.prompts import PromptRegistry

from .browser.agent import BrowserAgent
from .kb import KnowledgeBase
from .llm import AgentLLM
from .testcases.metrics import GenerationMetrics
from .testcases.store import TestCaseStore


@dataclass(slots=True)
class AgentServices:
    settings: Settings
    clock: Clock
    db: AsyncEngine
    gateway: GatewayCore
    llm: AgentLLM
    kb: KnowledgeBase
    testcases: TestCaseStore
    metrics: GenerationMetrics
    browser: BrowserAgent

    @property
    def prompts(self) -> PromptRegistry:
        return self.gateway.prompts
