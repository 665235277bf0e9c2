"""``aitp prompts …``: a thin client of ``/api/prompts`` (plus ``check``, which needs no server).

Like ``aitp keys``, it talks to a running server (``--url``/``AITP_URL``,
``--key``/``AITP_API_KEY``/``AITP_ADMIN_KEY``), so every change goes through
the same checks and audit log as the API. ``publish`` sends the file as YAML,
so the stored version keeps its comments and diffs read like the file.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import quote

import httpx
import orjson
import yaml

from .admin_cli import _call, _common, _drop_none, _key, _print


def _path(name: str, *rest: str) -> str:
    return "/api/prompts/" + "/".join(quote(part, safe="") for part in (name, *rest))


def _fail(message: str) -> NoReturn:
    sys.stderr.write(f"aitp: {message}\n")
    raise SystemExit(1)


def _send_yaml(args: argparse.Namespace, text: str) -> tuple[int, Any]:
    url = (args.url or os.environ.get("AITP_URL") or "http://127.0.0.1:8000").rstrip("/")
    headers = {"authorization": f"Bearer {_key(args)}", "content-type": "application/yaml"}
    try:
        response = httpx.post(url + "/api/prompts", content=text.encode(), headers=headers, timeout=30)
    except httpx.HTTPError as exc:
        _fail(f"cannot reach {url} ({exc}); is `aitp serve` running?")
    data = response.json() if response.content else {}
    if response.status_code >= 400:
        error = data.get("error", {}) if isinstance(data, dict) else {}
        _fail(f"{response.status_code} {error.get('message', response.text)}")
    return response.status_code, data


def _variables(args: argparse.Namespace) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if args.vars:
        try:
            text = sys.stdin.read() if args.vars == "-" else Path(args.vars).read_text(encoding="utf-8")
            loaded = yaml.safe_load(text)
        except (OSError, yaml.YAMLError) as exc:
            _fail(f"cannot read variables from {args.vars}: {exc}")
        if not isinstance(loaded, dict):
            _fail(f"{args.vars} must hold a mapping of variable names to values (JSON or YAML)")
        values.update(loaded)
    for item in args.var or []:
        name, sep, raw = item.partition("=")
        if not sep or not name:
            _fail(f"--var takes name=value, got {item!r}")
        try:
            values[name] = orjson.loads(raw)  # numbers, lists, objects, true/false as JSON …
        except orjson.JSONDecodeError:
            values[name] = raw  # … anything else as text
    return values


def prompts_list(args: argparse.Namespace) -> int:
    items = _call(args, "GET", "/api/prompts")["items"]
    if args.json:
        _print(items)
        return 0
    for item in items:
        labels = ", ".join(
            f"{label}=v{v['version']}" + (f" ({v['weight']:.0%})" if v.get("weight") is not None else "")
            for label, v in item["labels"].items()
        )
        sys.stdout.write(f"{item['name']}  v{item['latest_version']}  [{labels}]  {item['description'][:60]}\n")
    return 0


def prompts_show(args: argparse.Namespace) -> int:
    if args.version is not None:
        data = _call(args, "GET", _path(args.name, "versions", str(args.version)))
        if args.yaml:
            sys.stdout.write(data["yaml"])
            return 0
        _print(data)
        return 0
    _print(_call(args, "GET", _path(args.name)))
    return 0


def prompts_publish(args: argparse.Namespace) -> int:
    try:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text(encoding="utf-8")
    except OSError as exc:
        _fail(f"cannot read {args.file}: {exc}")
    status, data = _send_yaml(args, text)
    _print(data)
    if status == 200:
        sys.stderr.write(f"unchanged: this content is already {data['name']} version {data['version']}\n")
    return 0


def prompts_label(args: argparse.Namespace) -> int:
    if args.remove:
        _print(_call(args, "DELETE", _path(args.name, "labels", args.label)))
        return 0
    if args.version is None:
        _fail("give --version N (or --remove)")
    body = _drop_none({"version": args.version, "weight": args.weight, "pinned": False if args.unpin else None})
    _print(_call(args, "PUT", _path(args.name, "labels", args.label), body))
    return 0


def prompts_rollback(args: argparse.Namespace) -> int:
    body = _drop_none({"label": args.label, "version": args.version})
    _print(_call(args, "POST", _path(args.name, "rollback"), body))
    return 0


def prompts_diff(args: argparse.Namespace) -> int:
    query = "&".join(f"{k}={v}" for k, v in (("from", args.old), ("to", args.new)) if v is not None)
    data = _call(args, "GET", _path(args.name, "diff") + (f"?{query}" if query else ""))
    sys.stdout.write(data["diff"] or f"versions {data['from']} and {data['to']} are the same\n")
    return 0


def prompts_render(args: argparse.Namespace) -> int:
    body = _drop_none({"version": args.version, "label": args.label, "variables": _variables(args)})
    data = _call(args, "POST", _path(args.name, "render"), body)
    if args.json:
        _print(data)
        return 0
    sys.stderr.write(f"{data['name']} version {data['version']} (tier {data['tier']})\n")
    for message in data["messages"]:
        sys.stdout.write(f"--- {message['role']}\n{message['content']}\n")
    return 0


def prompts_stats(args: argparse.Namespace) -> int:
    query = "&".join(f"{k}={v}" for k, v in (("from", args.since), ("project", args.project)) if v)
    _print(_call(args, "GET", _path(args.name, "stats") + (f"?{query}" if query else "")))
    return 0


def prompts_check(args: argparse.Namespace) -> int:
    """Validate prompt files offline (syntax, schemas, declared variables): for CI of prompt changes."""
    from core.errors import APIError
    from gateway.prompts.loader import PromptFileError, prompt_files, read_file
    from gateway.prompts.template import compile_prompt, sandbox

    target = Path(args.path)
    files = prompt_files(target) if target.is_dir() else [target]
    env = sandbox()
    failed = 0
    for path in files:
        try:
            draft = read_file(path)
            compile_prompt(env, draft, draft.spec.name)
        except PromptFileError as exc:
            failed += 1
            sys.stderr.write(f"FAIL {exc}\n")
        except APIError as exc:
            failed += 1
            sys.stderr.write(f"FAIL {path}: {exc.message}\n")
        else:
            sys.stdout.write(f"ok   {path} ({draft.spec.name}, hash {draft.spec.content_hash()[:12]})\n")
    if not files:
        _fail(f"no prompt files (*.yaml) in {target}")
    return 1 if failed else 0


def add_prompt_commands(sub: Any) -> None:
    prompts = sub.add_parser("prompts", help="the prompt registry: versions, labels, rollback")
    cmds = prompts.add_subparsers(dest="prompts_command", required=True)

    listing = cmds.add_parser("list", help="prompts with their newest version and labels")
    _common(listing)
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=prompts_list)

    show = cmds.add_parser("show", help="a prompt's versions and labels, or one version in full")
    _common(show)
    show.add_argument("name")
    show.add_argument("--version", type=int, help="show this version's spec")
    show.add_argument("--yaml", action="store_true", help="with --version: print its YAML only")
    show.set_defaults(func=prompts_show)

    publish = cmds.add_parser("publish", help="publish a YAML file as a new version (server admin key)")
    _common(publish)
    publish.add_argument("file", help="prompt YAML file, or - for standard input")
    publish.set_defaults(func=prompts_publish)

    label = cmds.add_parser("label", help="point a label at a version (server admin key)")
    _common(label)
    label.add_argument("name")
    label.add_argument("label", help="production, canary or any label")
    label.add_argument("--version", type=int)
    label.add_argument("--weight", type=float, help="canary: share of production calls, 0 to 1")
    label.add_argument("--unpin", action="store_true", help="production: follow the prompt's file again")
    label.add_argument("--remove", action="store_true", help="remove the label (not production)")
    label.set_defaults(func=prompts_label)

    rollback = cmds.add_parser("rollback", help="move production (or --label) back (server admin key)")
    _common(rollback)
    rollback.add_argument("name")
    rollback.add_argument("--version", type=int, help="default: where the label pointed before its last move")
    rollback.add_argument("--label", default="production")
    rollback.set_defaults(func=prompts_rollback)

    diff = cmds.add_parser("diff", help="unified diff of two versions (default: the newest and the one before)")
    _common(diff)
    diff.add_argument("name")
    diff.add_argument("old", nargs="?", type=int)
    diff.add_argument("new", nargs="?", type=int)
    diff.set_defaults(func=prompts_diff)

    render = cmds.add_parser("render", help="render with variables (a preview; no LLM call)")
    _common(render)
    render.add_argument("name")
    render.add_argument("--version", type=int)
    render.add_argument("--label")
    render.add_argument("--var", action="append", help="name=value (value parsed as JSON when it is JSON)")
    render.add_argument("--vars", help="JSON or YAML file of variables, or - for standard input")
    render.add_argument("--json", action="store_true")
    render.set_defaults(func=prompts_render)

    stats = cmds.add_parser("stats", help="calls, tokens, cost, errors and latency per version")
    _common(stats)
    stats.add_argument("name")
    stats.add_argument("--since", help="ISO date or datetime (default: 30 days ago)")
    stats.add_argument("--project")
    stats.set_defaults(func=prompts_stats)

    check = cmds.add_parser("check", help="validate prompt files offline (no server)")
    check.add_argument("path", nargs="?", default="prompts", help="a file or a directory (default ./prompts)")
    check.set_defaults(func=prompts_check)
