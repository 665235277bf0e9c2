"""Builds the MCP server: the tool groups, the resources, one caller resolver."""

from __future__ import annotations

from mcp.server import MCPServer

from core.settings import McpSettings

from . import resources
from .caller import Caller
from .platform import Platform
from .subscriptions import TaskWatch
from .tools import budget, knowledge, prompts, tasks, testcases

INSTRUCTIONS = """\
aitp turns requirements into reviewed test cases and automation, for software-testing teams.
Typical flow: add_knowledge (optional) -> generate_test_cases (pass wait_seconds to wait) ->
get_test_cases -> review_test_cases -> export_test_cases; generate_automation -> review_task.
Long tools return a task at once; get_task_status tells its state and what to do next.
Results are paged to fit your context: pass next_cursor back to get the next page.
"""


def build_server(platform: Platform, settings: McpSettings, caller: Caller) -> tuple[MCPServer, TaskWatch]:
    """The server, and the watch that announces task changes to subscribers (run it beside the server)."""
    watch = TaskWatch(platform, caller.of_request)
    server = MCPServer(
        "aitp", title="aitp test platform", instructions=INSTRUCTIONS, version="0.1.0", subscriptions=watch.bus
    )
    watch.install(server)
    budget_tokens = settings.result_tokens
    tasks.register(server, platform, caller, budget_tokens)
    testcases.register(server, platform, caller, budget_tokens, settings.max_wait_s)
    knowledge.register(server, platform, caller, budget_tokens)
    prompts.register(server, platform, caller)
    budget.register(server, platform, caller)
    resources.register(server, platform, caller)
    return server, watch
