"""Prompt tools: list the registry's prompts and render one."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from pydantic import Field

from ..caller import Caller
from ..errors import domain_errors
from ..models import PromptInfo, PromptList, RenderedPrompt
from ..platform import Platform


def register(server: MCPServer, platform: Platform, caller: Caller) -> None:
    @server.tool(title="List prompts")
    @domain_errors
    async def list_prompts(ctx: Context) -> PromptList:
        """The registry's prompts with their production version and variables."""
        return PromptList(items=[PromptInfo.model_validate(p) for p in await platform.prompts.list(caller(ctx))])

    @server.tool(title="Render a prompt")
    @domain_errors
    async def render_prompt(
        name: Annotated[str, Field(min_length=1, max_length=128, description="the prompt's name")],
        ctx: Context,
        variables: Annotated[dict[str, Any], Field(description="values for the prompt's variables")] = {},  # noqa: B006
        version: Annotated[int | None, Field(ge=1, le=2**31 - 1, description="a published version")] = None,
        label: Annotated[str | None, Field(max_length=64, description="or a label; default production")] = None,
    ) -> RenderedPrompt:
        """The messages a prompt renders to, as the gateway would send them."""
        rendered = await platform.prompts.render(caller(ctx), name, dict(variables), version=version, label=label)
        return RenderedPrompt.model_validate(rendered)
