"""``aitp mcp`` over stdio, driven by the official SDK client: standalone, and as a bridge to ``aitp serve``."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError
from mcp_types import ElicitResult, ResourceUpdatedNotification

from tests.agents.answers import LOGIN_ZH
from tests.agents.conftest import task_config, wait_task
from tests.conftest import Server, ServerFactory

from .test_http import TOOLS, structured, text_of


def standalone_env(tmp: Path) -> dict[str, str]:
    """A fresh embedded platform in ``tmp``: its own SQLite, Chroma and admin key."""
    config = tmp / "aitp.yaml"
    config.write_text(yaml.safe_dump(task_config()))
    key = "sk-aitp-test-admin-" + secrets.token_urlsafe(24)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AITP_") and k != "DASHSCOPE_API_KEY"}
    env.update(
        {
            "AITP_ADMIN_KEY": key,
            "AITP_API_KEY": key,
            "AITP_CONFIG": str(config),
            "AITP_DATA_DIR": str(tmp / "data"),
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "AITP_LOG_LEVEL": "warning",
        }
    )
    return env


def stdio(env: dict[str, str], cwd: Path, *args: str) -> StdioServerParameters:
    return StdioServerParameters(command=sys.executable, args=["-m", "aitp.cli", "mcp", *args], env=env, cwd=cwd)


@pytest.mark.timeout(180)
async def test_standalone_runs_the_platform_in_process(tmp_path: Path) -> None:
    env = standalone_env(tmp_path)
    async with Client(stdio(env, tmp_path), read_timeout_seconds=120) as client:
        assert {t.name for t in (await client.list_tools()).tools} == TOOLS
        outcome = structured(
            await client.call_tool("generate_test_cases", {"requirement": LOGIN_ZH, "max_cases": 8, "wait_seconds": 60})
        )
        assert outcome["task"]["status"] == "succeeded", outcome["task"]
        assert outcome["cases"]["items"]
        prompts = (await client.list_prompts()).prompts
        assert prompts, "registry prompts are MCP prompts"

        # A second process on the same embedded data directory is refused, with what to do instead.
        second = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "aitp.cli", "mcp"],
            env=env,
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=60,
        )
    assert second.returncode == 1
    message = second.stderr.decode()
    assert "in use by another aitp process" in message and "aitp mcp --url" in message
    assert "Traceback" not in message


def test_standalone_without_a_key_says_how_to_give_one(tmp_path: Path) -> None:
    env = standalone_env(tmp_path)
    env.pop("AITP_API_KEY")
    done = subprocess.run(
        [sys.executable, "-m", "aitp.cli", "mcp"], env=env, cwd=tmp_path, capture_output=True, timeout=60
    )
    assert done.returncode == 2 and "AITP_API_KEY" in done.stderr.decode()


@pytest.fixture(scope="module")
async def shared(server_factory: ServerFactory) -> Server:
    return await asyncio.to_thread(server_factory, task_config())


@pytest.mark.timeout(120)
async def test_bridge_relays_tools_progress_and_the_reviewers_answer(shared: Server, tmp_path: Path) -> None:
    key = shared.new_key("bridged")
    submitted = shared.api("POST", "/api/tasks", key=key, json={"kind": "system.sleep", "input": {"review": True}})
    task_id = submitted.json()["id"]
    await wait_task(shared, key, task_id, "reviewing")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("AITP_")}, "AITP_API_KEY": key}
    asked: list[str] = []

    async def elicit(context: Any, params: Any) -> ElicitResult:
        asked.append(params.message)
        return ElicitResult(action="accept", content={"decision": "reject", "feedback": "shorter, please"})

    bridge = stdio(env, tmp_path, "--url", f"{shared.base_url}/mcp")
    async with Client(bridge, elicitation_callback=elicit, mode="legacy") as client:
        assert {t.name for t in (await client.list_tools()).tools} == TOOLS
        status = structured(await client.call_tool("get_task_status", {"task_id": task_id}))
        assert status["status"] == "reviewing"
        structured(await client.call_tool("review_task", {"task_id": task_id}))
        resource = await client.read_resource(f"task://{task_id}")
        assert task_id in text_of(resource)
    assert asked, "the remote server's question reached the person at the stdio end"
    task = shared.api("GET", f"/api/tasks/{task_id}", key=key).json()
    assert task["review"]["action"] == "rejected" and task["review"]["feedback"] == "shorter, please"


def test_bridge_with_a_bad_key_fails_at_start_naming_the_cause(shared: Server, tmp_path: Path) -> None:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("AITP_")}, "AITP_API_KEY": "sk-aitp-nope"}
    done = subprocess.run(
        [sys.executable, "-m", "aitp.cli", "mcp", "--url", f"{shared.base_url}/mcp"],
        env=env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "401" in done.stderr.decode() and "Traceback" not in done.stderr.decode()


@pytest.mark.timeout(120)
async def test_bridge_relays_resource_updates_of_a_subscribed_task(shared: Server, tmp_path: Path) -> None:
    key = shared.new_key("bridged-updates")
    submitted = shared.api("POST", "/api/tasks", key=key, json={"kind": "system.sleep", "input": {"review": True}})
    task_id = submitted.json()["id"]
    await wait_task(shared, key, task_id, "reviewing")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("AITP_")}, "AITP_API_KEY": key}
    updates: list[str] = []

    async def on_message(message: Any) -> None:
        if isinstance(message, ResourceUpdatedNotification):
            updates.append(str(message.params.uri))

    bridge = stdio(env, tmp_path, "--url", f"{shared.base_url}/mcp")
    uri = f"task://{task_id}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # resources/subscribe is the 2025-11-25 way, deprecated by the SDK
        async with Client(bridge, message_handler=on_message, mode="legacy") as client:
            with pytest.raises(MCPError, match="only task://"):
                await client.subscribe_resource("task://not-a-task-of-mine")
            await client.subscribe_resource(uri)
            shared.api("POST", f"/api/tasks/{task_id}/review", key=key, json={"action": "approved"})
            for _ in range(100):
                if updates:
                    break
                await asyncio.sleep(0.1)
    assert updates and set(updates) == {uri}, updates
