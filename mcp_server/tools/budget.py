"""The budget tool: what the caller's project may still spend."""

from __future__ import annotations

from mcp.server import MCPServer
from mcp.server.mcpserver import Context

from ..caller import Caller
from ..errors import domain_errors
from ..models import BudgetStatus
from ..platform import Platform


def register(server: MCPServer, platform: Platform, caller: Caller) -> None:
    @server.tool(title="Budget status")
    @domain_errors
    async def get_budget_status(ctx: Context) -> BudgetStatus:
        """Every budget of the project (used, reserved, remaining, reset, action), today's spend by tier, savings."""
        return BudgetStatus.model_validate(await platform.budgets.status(caller(ctx)))
