"""``aitp mcp``: the MCP tools over stdio, standalone (the platform in this process) or as a bridge."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import TYPE_CHECKING, Any

from core.datadir import DataDirBusy
from core.errors import APIError

if TYPE_CHECKING:
    from core.settings import Settings


def add_mcp_command(sub: Any) -> None:
    mcp = sub.add_parser(
        "mcp",
        help="serve the MCP tools over stdio (the key in AITP_API_KEY)",
        description="Standalone: runs the platform in this process (embedded mode). "
        "With --url: relays stdio to a running aitp's /mcp, for teams.",
    )
    mcp.add_argument("--url", help="a running aitp's MCP endpoint, e.g. http://127.0.0.1:8000/mcp")
    mcp.set_defaults(func=cmd_mcp)


def _err(text: str) -> None:
    sys.stderr.write(text + "\n")


def cmd_mcp(args: argparse.Namespace) -> int:
    key = os.environ.get("AITP_API_KEY", "").strip()
    if not key:
        _err("aitp mcp: set AITP_API_KEY to an aitp key (sk-aitp-…); the tools act with that key's project and role")
        return 2
    if args.url:
        from mcp_server.bridge import run_bridge

        try:
            asyncio.run(run_bridge(args.url, key))
        except Exception as exc:  # the bridge's only job is the connection: say why it failed, no traceback
            _err(f"aitp mcp: cannot use {args.url}: {_cause(exc)}")
            return 1
        return 0
    from core.settings import SettingsError, load_settings  # slow to import: only for this command

    try:
        settings = load_settings()
    except SettingsError as exc:
        _err(f"aitp mcp: {exc}")
        return 2
    from core.logging import configure_logging

    # stdout carries the protocol: logs go to stderr only (configure_logging's handler).
    configure_logging(settings.log_level, settings.log_json)
    try:
        asyncio.run(_standalone(settings, key))
    except DataDirBusy as exc:
        _err(f"aitp mcp: {exc}")
        return 1
    except APIError as exc:
        _err(f"aitp mcp: AITP_API_KEY: {exc.message}")
        return 2
    return 0


async def _standalone(settings: Settings, key: str) -> None:
    from agents.platform import build_platform
    from mcp_server.caller import Caller
    from mcp_server.prompts import add_registry_prompts
    from mcp_server.server import build_server

    # The platform holds the embedded data directory while it runs (DataDirBusy if another process does).
    async with build_platform(settings) as services:
        principal = await services.authenticate(key)
        caller = Caller(principal)
        server, watch = build_server(services, settings.mcp, caller)
        await add_registry_prompts(server, services, caller, principal)
        async with watch.running():
            await server.run_stdio_async()


def _cause(exc: BaseException) -> str:
    # anyio task groups wrap the real error; the innermost one is what the user can act on.
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"
