"""Which calls of the agents can only reach the local/echo stand-in (automation is refused at submit then)."""

from __future__ import annotations

from typing import Any, cast

from agents.llm import AgentLLM
from core.settings import GenerationSettings, Settings
from gateway.catalog import build_catalog
from gateway.chat import ChatService

ADMIN = "sk-aitp-test-admin-Zq8rT1vWm3Np7Ks2Lx9Bd4Hf6Gj0Yc5E"
EMBEDDING = {"name": "emb", "model": "openai/text-embedding-3-small", "api_key": "x"}
TURBO = {"name": "qwen", "model": "hosted_vllm/qwen", "api_base": "http://127.0.0.1:1/v1", "tier": "turbo"}


def agent_llm(models: list[dict[str, Any]], model: str = "auto") -> AgentLLM:
    catalog = build_catalog(Settings(admin_key=ADMIN, models=models), {})
    return AgentLLM(chat=cast(ChatService, None), catalog=catalog, settings=GenerationSettings(model=model))


def test_only_an_embedding_deployment_still_leaves_generation_on_echo() -> None:
    llm = agent_llm([EMBEDDING])
    assert not llm.only_echo and llm.echo_targets() == ["the turbo tier", "the plus tier"]
    assert agent_llm([]).only_echo


def test_each_route_to_echo_is_named() -> None:
    assert agent_llm([TURBO, {**TURBO, "name": "qwen-plus", "tier": "plus"}]).echo_targets() == []
    # auto sends JSON-schema answers to plus, which only echo serves here
    assert agent_llm([TURBO]).echo_targets() == ["the plus tier"]
    assert agent_llm([TURBO], model="turbo").echo_targets() == []
    assert agent_llm([EMBEDDING, TURBO], model="qwen").echo_targets() == []
    assert agent_llm([EMBEDDING], model="local/echo").echo_targets() == ["'local/echo'"]
