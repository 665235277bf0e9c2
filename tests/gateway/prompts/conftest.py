"""Prompt-registry fixtures: live servers whose prompt directory is a temp dir of test prompts."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import PostgresDatabases, Server, ServerFactory, gateway_config
from tests.fakes.llm_upstream import FakeUpstream

SEED = 20261123
CASES_SCHEMA = {
    "type": "object",
    "required": ["cases"],
    "properties": {"cases": {"type": "array", "items": {"type": "string"}}},
}


def spec(name: str, content: str = "Write about {{ topic }}.", **extra: Any) -> dict[str, Any]:
    """A small valid prompt spec with one required string variable ``topic``."""
    body: dict[str, Any] = {
        "name": name,
        "description": f"test prompt {name}",
        "variables": {
            "type": "object",
            "required": ["topic"],
            "properties": {"topic": {"type": "string"}, "count": {"type": "integer", "default": 3}},
        },
        "template": [
            {"role": "system", "content": "You write {{ count }} short test ideas."},
            {"role": "user", "content": content},
        ],
    }
    body.update(extra)
    return body


def unique(prefix: str = "t") -> str:
    return f"{prefix}.p{secrets.token_hex(4)}"


def publish(server: Server, body: dict[str, Any] | str, key: str | None = None) -> httpx.Response:
    if isinstance(body, str):
        return server.api("POST", "/api/prompts", key=key, content=body, headers={"content-type": "application/yaml"})
    return server.api("POST", "/api/prompts", key=key, json=body)


def published(server: Server, body: dict[str, Any]) -> dict[str, Any]:
    response = publish(server, body)
    assert response.status_code in (200, 201), response.text
    data: dict[str, Any] = response.json()
    return data


def write_prompt(directory: Path, body: dict[str, Any]) -> Path:
    path = directory / f"{body['name']}.yaml"
    path.write_text(yaml.safe_dump(body, allow_unicode=True, sort_keys=False))
    return path


def prompt_env(directory: Path, seed: int | None = SEED) -> dict[str, str]:
    env = {"AITP_PROMPTS__DIRECTORY": str(directory)}
    if seed is not None:
        env["AITP_PROMPTS__RANDOM_SEED"] = str(seed)
    return env


def file_prompts() -> list[dict[str, Any]]:
    """What the shared test server loads from its prompt directory on start."""
    return [
        spec("qa.ideas"),
        spec("qa.cases", "List test cases for {{ topic }} as JSON.", response_schema=CASES_SCHEMA),
        spec("qa.heavy", tier="plus"),
        spec("qa.light", tier="turbo", response_schema=CASES_SCHEMA),
    ]


@pytest.fixture(scope="package", params=["sqlite", "postgres"])
async def prompt_server(
    request: pytest.FixtureRequest,
    fake: FakeUpstream,
    server_factory: ServerFactory,
    pg_databases: PostgresDatabases,
    tmp_path_factory: pytest.TempPathFactory,
) -> Server:
    """A gateway with test prompts loaded from files, a seeded canary split and turbo-first JSON schemas."""
    directory = tmp_path_factory.mktemp("prompts")
    for body in file_prompts():
        write_prompt(directory, body)
    url = await pg_databases.create() if request.param == "postgres" else None
    config = gateway_config(fake, routing={"json_schema_tier": "turbo"})
    return await asyncio.to_thread(server_factory, config, url, extra_env=prompt_env(directory), keep=True)
