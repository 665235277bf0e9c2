"""The ``aitp`` command line: serve, worker, version, config check, and the clients of a running server."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson

from .admin_cli import add_admin_commands
from .mcp_cli import add_mcp_command
from .prompts_cli import add_prompt_commands
from .qa_cli import add_qa_commands
from .tasks_cli import add_task_commands

if TYPE_CHECKING:
    from core.settings import Settings


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("aitp")
    except PackageNotFoundError:
        return "0+unknown"


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


def _err(text: str) -> None:
    sys.stderr.write(text + "\n")


def _load(overrides: dict[str, Any]) -> Settings:
    # Imported here: pydantic-settings takes most of a second to import, which every client command would pay.
    from core.settings import SettingsError, load_settings

    try:
        return load_settings(**overrides)
    except SettingsError as exc:
        _err(f"aitp: {exc}")
        raise SystemExit(2) from None


def _limit_malloc_arenas() -> None:
    """glibc gives each thread its own malloc arena; with the DB driver's and litellm's threads that
    fragments memory (measured: ~+60 MB RSS under load). Two arenas are plenty for one event loop."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name:
        m_arena_max = -8
        ctypes.CDLL(name).mallopt(m_arena_max, 2)


def cmd_serve(args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = {}
    if args.dev:
        overrides["dev"] = True
    settings = _load(overrides)
    host = args.host or settings.server.host
    port = settings.server.port if args.port is None else args.port
    import uvicorn

    from core.logging import configure_logging

    from .app import create_app

    configure_logging(settings.log_level, settings.log_json)
    _limit_malloc_arenas()
    app = create_app(settings)
    uvicorn.run(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=settings.server.access_log,
        log_config=None,
        timeout_graceful_shutdown=10,
    )
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from agents.tasks.worker import run_worker, supervise
    from core.logging import configure_logging

    settings = _load({})
    configure_logging(settings.log_level, settings.log_json)
    if args.processes > 1:
        return supervise(args.processes, args.threads, args.queues, args.metrics_port)
    queues = {q.strip() for q in args.queues.split(",") if q.strip()} if args.queues else None
    return run_worker(settings, threads=args.threads, queues=queues, metrics_port=args.metrics_port)


def cmd_version(args: argparse.Namespace) -> int:
    _out(f"aitp {_version()}")
    return 0


def _summary(settings: Settings) -> dict[str, Any]:
    from core.settings import config_path
    from gateway.catalog import build_catalog

    catalog = build_catalog(settings, os.environ)
    path = config_path(dict(os.environ))
    return {
        "config_file": str(path) if path else None,
        "mode": "distributed" if settings.redis_url else "embedded",
        "database": settings.effective_database_url.split("@")[-1],
        "redis": "configured" if settings.redis_url else None,
        "tiers": {tier: [catalog.entries[n].label for n in names] for tier, names in catalog.tiers.items()},
        "deployments": {name: entry.model for name, entry in catalog.entries.items()},
        "disabled": catalog.disabled,
        "routing": settings.routing.model_dump(),
        "retries": settings.retries.model_dump(),
        "server": settings.server.model_dump(),
    }


def cmd_config_check(args: argparse.Namespace) -> int:
    settings = _load({"dev": True} if args.dev else {})
    summary = _summary(settings)
    if args.json:
        _out(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode())
        return 0
    _out(f"settings OK ({summary['config_file'] or 'no aitp.yaml; defaults and AITP_* environment'})")
    _out(f"  mode: {summary['mode']}, database: {summary['database']}")
    for tier, labels in summary["tiers"].items():
        _out(f"  {tier}: {', '.join(labels)}")
    for name, why in summary["disabled"].items():
        _out(f"  disabled deployment {name}: {why}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aitp", description="AI gateway and agent server for testing teams")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the server (embedded mode by default)")
    serve.add_argument("--host", help="bind address (default: server.host, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: server.port, 8000; 0 picks a free one)")
    serve.add_argument("--dev", action="store_true", help="development mode")
    serve.set_defaults(func=cmd_serve)

    worker = sub.add_parser("worker", help="run Dramatiq worker processes for tasks (needs AITP_REDIS_URL)")
    worker.add_argument("--processes", type=int, default=1, help="worker processes (default 1)")
    worker.add_argument("--threads", type=int, default=8, help="worker threads per process (default 8)")
    worker.add_argument("--queues", help="comma-separated queues to consume (default: all)")
    worker.add_argument("--metrics-port", type=int, help="serve Prometheus metrics here (process i: port + i)")
    worker.set_defaults(func=cmd_worker)

    ver = sub.add_parser("version", help="print the version")
    ver.set_defaults(func=cmd_version)

    add_admin_commands(sub)
    add_prompt_commands(sub)
    add_mcp_command(sub)
    add_qa_commands(sub)
    add_task_commands(sub)

    config = sub.add_parser("config", help="settings")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    check = config_sub.add_parser("check", help="validate settings and show what would be served")
    check.add_argument("--json", action="store_true", help="print the summary as JSON")
    check.add_argument("--dev", action="store_true", help="check as `aitp serve --dev` runs (no admin key needed)")
    check.set_defaults(func=cmd_config_check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
