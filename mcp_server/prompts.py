"""Registry prompts as MCP prompts: their variables become arguments; they render the production label."""

from __future__ import annotations

from typing import Any

import orjson
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.prompts.base import Prompt, PromptArgument

from core.errors import APIError
from core.identity.principal import Principal

from .caller import Caller
from .platform import Platform


def _value(raw: str, schema: dict[str, Any]) -> Any:
    # MCP prompt arguments are strings; a variable typed as a number, list or object is sent as JSON.
    if schema.get("type") not in (None, "string"):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            return raw
    return raw


def _prompt(platform: Platform, caller: Caller, info: dict[str, Any]) -> Prompt:
    name = str(info["name"])
    schema = info.get("variables") or {}
    properties: dict[str, Any] = schema.get("properties") or {}
    required = set(schema.get("required") or [])

    async def render(ctx: Context, **arguments: str) -> list[dict[str, Any]]:
        variables = {key: _value(raw, properties.get(key) or {}) for key, raw in arguments.items()}
        try:
            rendered = await platform.prompts.render(caller(ctx), name, variables)
        except APIError as exc:
            raise ValueError(exc.message) from None
        # MCP prompts carry user and assistant turns; a system turn is given to the user turn that follows.
        return [
            {"role": "assistant" if m["role"] == "assistant" else "user", "content": str(m.get("content") or "")}
            for m in rendered["messages"]
        ]

    return Prompt(
        name=name,
        title=name,
        description=str(info.get("description") or ""),
        arguments=[
            PromptArgument(name=key, description=str(spec.get("description") or ""), required=key in required)
            for key, spec in properties.items()
        ],
        fn=render,
        context_kwarg="ctx",
    )


async def add_registry_prompts(server: MCPServer, platform: Platform, caller: Caller, lister: Principal) -> int:
    """Register every registry prompt (as ``lister`` sees them); returns how many."""
    listed = await platform.prompts.list(lister)
    for info in listed:
        server.add_prompt(_prompt(platform, caller, info))
    return len(listed)
