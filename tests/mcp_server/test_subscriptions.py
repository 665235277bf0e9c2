"""Subscribed ``task://{id}`` resources are announced when the task changes, in both protocol generations."""

from __future__ import annotations

import asyncio
import warnings
from typing import Any

import pytest
from mcp.shared.exceptions import MCPError
from mcp_types import ResourceUpdatedNotification

from tests.conftest import Server
from tests.mcp_server.test_http import connect, mcp_server  # noqa: F401  (the module's live server)


def submit_sleep(server: Server, key: str, **spec: Any) -> str:
    response = server.api("POST", "/api/tasks", key=key, json={"kind": "system.sleep", "input": spec})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def test_legacy_subscribers_hear_status_changes_of_their_task_only(mcp_server: Server) -> None:  # noqa: F811
    key, stranger = mcp_server.new_key(), mcp_server.new_key(project="other-subs")
    # Long enough that the subscription is in place before the task parks for review.
    task_id = submit_sleep(mcp_server, key, seconds=3, review=True)
    updates: list[str] = []

    async def on_message(message: Any) -> None:
        if isinstance(message, ResourceUpdatedNotification):
            updates.append(str(message.params.uri))

    uri = f"task://{task_id}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # resources/subscribe is the 2025-11-25 way, deprecated by the SDK
        async with connect(mcp_server, key, message_handler=on_message) as client:
            assert client.server_capabilities.resources is not None
            assert client.server_capabilities.resources.subscribe is True
            await client.subscribe_resource(uri)
            for _ in range(100):
                if updates:
                    break
                await asyncio.sleep(0.1)
            status = mcp_server.api("GET", f"/api/tasks/{task_id}", key=key).json()["status"]
            assert updates and set(updates) == {uri}, (updates, status)
            mcp_server.api("POST", f"/api/tasks/{task_id}/review", key=key, json={"action": "approved"})
            seen = len(updates)
            for _ in range(100):
                status = mcp_server.api("GET", f"/api/tasks/{task_id}", key=key).json()["status"]
                if status == "succeeded" and len(updates) > seen:
                    break
                await asyncio.sleep(0.1)
            assert len(updates) > seen, "the review and the task's end were not announced"
        async with connect(mcp_server, stranger) as client:
            with pytest.raises(MCPError, match="only task://"):
                await client.subscribe_resource(uri)
            with pytest.raises(MCPError, match="only task://"):
                await client.subscribe_resource("task://no-such-task")


async def test_listeners_of_the_new_generation_get_updates_for_readable_tasks(mcp_server: Server) -> None:  # noqa: F811
    key = mcp_server.new_key()
    task_id = submit_sleep(mcp_server, key, seconds=30)
    foreign = submit_sleep(mcp_server, mcp_server.new_key(project="other-listen"), seconds=30)
    mine, theirs = f"task://{task_id}", f"task://{foreign}"
    async with (
        connect(mcp_server, key, "2026-07-28") as client,
        client.listen(resource_subscriptions=[mine, theirs]) as subscription,
    ):
        # Another project's task is left out of what the server honours.
        assert subscription.honored is not None
        assert subscription.honored.resource_subscriptions == [mine]
        cancelled = mcp_server.api("POST", f"/api/tasks/{task_id}/cancel", key=key)
        assert cancelled.status_code == 200, cancelled.text
        event = await asyncio.wait_for(anext(aiter(subscription)), timeout=15)
    assert getattr(event, "uri", None) == mine, event
