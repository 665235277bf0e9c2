"""``aitp tasks list|show|watch`` and ``aitp usage``: clients of the task and usage REST API.

``watch`` follows ``GET /api/tasks/{id}/events`` (server-sent events) and
prints each step as it finishes; it exits 0 when the task succeeds or waits
for a review, and 1 when it fails or is cancelled, printing the error's hint.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson

from .admin_cli import _call, _common, _drop_none, _fail, _key, _print, _url
from .cli_table import out, say, table

TERMINAL = {"task_succeeded", "task_failed", "task_cancelled"}
STOPS = TERMINAL | {"task_need_review"}  # the stream stays open through a review; watching ends there
TASK_COLUMNS = ("id", "kind", "status", "progress", "current_step", "created_at")


def _query(**values: Any) -> str:
    present = _drop_none(values)
    return f"?{urlencode(present)}" if present else ""


def tasks_list(args: argparse.Namespace) -> int:
    found = _call(
        args, "GET", "/api/tasks" + _query(status=args.status, kind=args.kind, limit=args.limit, offset=args.offset)
    )
    if args.json:
        _print(found)
        return 0
    out(table(found["items"], TASK_COLUMNS))
    out(f"{len(found['items'])} of {found['total']} tasks")
    return 0


def tasks_show(args: argparse.Namespace) -> int:
    task = _call(args, "GET", f"/api/tasks/{args.task_id}")
    if args.json:
        _print(task)
        return 0
    describe(task)
    return 0


def describe(task: dict[str, Any]) -> None:
    out(table([task], TASK_COLUMNS))
    error = task.get("error")
    if error:
        out(f"error: {error.get('type')}: {error.get('message')}")
        if error.get("hint"):
            out(f"hint: {error['hint']}")
    result = task.get("result")
    if isinstance(result, dict):
        shown = {k: v for k, v in result.items() if not isinstance(v, list | dict) and v is not None}
        for name, value in shown.items():
            out(f"{name}: {value}")


def events(args: argparse.Namespace, task_id: str) -> Iterator[dict[str, Any]]:
    """The task's events as the server sends them, from the first; ends after the final one."""
    headers = {"authorization": f"Bearer {_key(args)}", "accept": "text/event-stream"}
    url = f"{_url(args)}/api/tasks/{task_id}/events"
    # No read timeout: the server sends a keep-alive comment every few seconds while a step runs.
    with httpx.stream("GET", url, headers=headers, timeout=httpx.Timeout(30, read=None)) as response:
        if response.status_code >= 400:
            response.read()
            _fail(response)
        kind, data = "message", ""
        for line in response.iter_lines():
            if line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                data += line[5:].strip()
            elif line == "" and data:
                payload = orjson.loads(data)
                yield payload if kind != "error" else {"type": "error", "data": payload.get("error", payload)}
                kind, data = "message", ""


def watch(args: argparse.Namespace, task_id: str) -> int:
    """Print the task's events until it finishes or waits for review; the exit code says how it ended."""
    last: dict[str, Any] | None = None
    try:
        for event in events(args, task_id):
            last = event
            if args.json:
                out(orjson.dumps(event).decode())
            else:
                _show_event(event)
            if event["type"] in STOPS or event["type"] == "error":
                break
    except httpx.HTTPError as exc:
        say(f"aitp: the event stream broke ({exc}); `aitp tasks show {task_id}` reads where the task is")
        return 1
    task = _call(args, "GET", f"/api/tasks/{task_id}")
    if not args.json:
        describe(task)
    if last is not None and last["type"] == "error":
        return 1
    return 0 if task["status"] in ("succeeded", "reviewing") else 1


def _show_event(event: dict[str, Any]) -> None:
    data = event.get("data") or {}
    kind = event["type"]
    if kind == "task_progress":
        say(f"{data.get('progress', 0):>3}%  {data.get('step')}")
    elif kind == "task_need_review":
        say("waiting for review: POST /api/tasks/{id}/review (approve, correct or reject)")
    elif kind == "task_succeeded":
        say("100%  succeeded")
    elif kind == "error":
        say(f"aitp: {data.get('message', data)}")
    elif kind in TERMINAL or kind in ("task_started", "task_retry", "task_released"):
        say(kind.removeprefix("task_").replace("_", " "))


def tasks_watch(args: argparse.Namespace) -> int:
    return watch(args, args.task_id)


def usage(args: argparse.Namespace) -> int:
    query = _query(project=args.project, group_by=args.group_by, **{"from": getattr(args, "from"), "to": args.to})
    found = _call(args, "GET", "/api/usage" + query)
    if args.json:
        _print(found)
        return 0
    columns = ("key", "requests", "prompt_tokens", "completion_tokens", "cost_usd", "errors")
    out(table(found["groups"], columns, [found["group_by"].upper(), *(c.upper() for c in columns[1:])]))
    totals = found["totals"]
    out(
        f"total: {totals.get('requests', 0)} requests, {totals.get('prompt_tokens', 0)} + "
        f"{totals.get('completion_tokens', 0)} tokens, ${totals.get('cost_usd', 0):.6f} "
        f"({found['from']} to {found['to']})"
    )
    return 0


def command(parent: Any, name: str, help: str, func: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
    """A subcommand talking to the server: ``--url``, ``--key`` and ``--json`` (the server's JSON, for scripts)."""
    parser: argparse.ArgumentParser = parent.add_parser(name, help=help)
    _common(parser)
    parser.add_argument("--json", action="store_true", help="print the server's JSON (for scripts)")
    parser.set_defaults(func=func)
    return parser


def answer(args: argparse.Namespace, found: Any, rows: Any, columns: Sequence[str]) -> None:
    """The server's JSON with ``--json``, else ``rows`` as a table."""
    if args.json:
        _print(found)
    else:
        out(table(rows, columns))


def add_task_commands(sub: Any) -> None:
    tasks = sub.add_parser("tasks", help="tasks: list, show, watch progress")
    tasks_sub = tasks.add_subparsers(dest="tasks_command", required=True)
    listing = command(tasks_sub, "list", "the project's tasks, newest first", tasks_list)
    listing.add_argument("--status", help="pending, running, reviewing, succeeded, failed or cancelled")
    listing.add_argument("--kind", help="e.g. testcase.generate")
    listing.add_argument("--limit", type=int, default=20)
    listing.add_argument("--offset", type=int)
    show = command(tasks_sub, "show", "one task: status, error and hint, result summary", tasks_show)
    show.add_argument("task_id")
    follow = command(tasks_sub, "watch", "follow a task's progress live until it ends", tasks_watch)
    follow.add_argument("task_id")

    report = command(sub, "usage", "model usage and cost, grouped by day, model, tier, key …", usage)
    report.add_argument("--project", help="the server admin key: one project (default: all)")
    report.add_argument("--group-by", default="day", help="day, project, key, model, tier or prompt (default day)")
    report.add_argument("--from", dest="from", help="ISO date or time (default: 30 days ago)")
    report.add_argument("--to", help="ISO date or time (default: now)")
