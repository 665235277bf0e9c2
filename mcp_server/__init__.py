"""MCP server: aitp's tasks, test cases, knowledge, prompts and budgets as MCP tools.

Every tool calls the same service functions as the REST API, with the caller's
:class:`~core.identity.principal.Principal`, so one rule set covers both. The
server is mounted at ``/mcp`` over streamable HTTP (see :mod:`mcp_server.http`)
and served over stdio by ``aitp mcp`` (see :mod:`mcp_server.stdio`).
"""
