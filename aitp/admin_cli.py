"""``aitp keys …`` and ``aitp budgets …``: thin clients of the admin REST API.

They talk to a running server (``--url``, default ``AITP_URL`` or
http://127.0.0.1:8000) with ``--key`` (default ``AITP_API_KEY``, then
``AITP_ADMIN_KEY``, then ``./data/dev-admin-key``), so every change goes
through the same checks and audit log as the API.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import httpx
import orjson


def _key(args: argparse.Namespace) -> str:
    for candidate in (args.key, os.environ.get("AITP_API_KEY"), os.environ.get("AITP_ADMIN_KEY")):
        if candidate:
            return str(candidate)
    dev = Path(os.environ.get("AITP_DATA_DIR", "data")) / "dev-admin-key"
    if dev.exists():
        return dev.read_text().strip()
    sys.stderr.write("aitp: no key: pass --key, or set AITP_API_KEY or AITP_ADMIN_KEY\n")
    raise SystemExit(2)


def _url(args: argparse.Namespace) -> str:
    return str(args.url or os.environ.get("AITP_URL") or "http://127.0.0.1:8000").rstrip("/")


def _request(args: argparse.Namespace, method: str, path: str, **kw: Any) -> httpx.Response:
    """One call to the server; an error answer prints the server's message and exits 1."""
    url = _url(args)
    try:
        response = httpx.request(
            method, url + path, headers={"authorization": f"Bearer {_key(args)}"}, timeout=kw.pop("timeout", 30), **kw
        )
    except httpx.HTTPError as exc:
        sys.stderr.write(f"aitp: cannot reach {url} ({exc}); is `aitp serve` running?\n")
        raise SystemExit(1) from None
    if response.status_code >= 400:
        _fail(response)
    return response


def _fail(response: httpx.Response) -> NoReturn:
    try:
        data = response.json()
    except ValueError:
        data = None
    error = data.get("error", {}) if isinstance(data, dict) else {}
    message = error.get("message") if isinstance(error, dict) else None
    sys.stderr.write(f"aitp: {response.status_code} {message or response.text}\n")
    raise SystemExit(1)


def _call(args: argparse.Namespace, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    response = _request(args, method, path, json=body)
    return response.json() if response.content else {}


def _print(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def keys_create(args: argparse.Namespace) -> int:
    body = _drop_none(
        {
            "project": args.project,
            "name": args.name,
            "role": args.role,
            "allowed_models": args.models.split(",") if args.models else None,
            "expires_in_s": args.expires_days * 86400 if args.expires_days else None,
            "rpm": args.rpm,
            "tpm": args.tpm,
        }
    )
    data = _call(args, "POST", "/api/keys", body)
    _print(data)
    sys.stderr.write("keep the key now: it is shown only once\n")
    return 0


def keys_list(args: argparse.Namespace) -> int:
    suffix = f"?project={args.project}" if args.project else ""
    _print(_call(args, "GET", "/api/keys" + suffix)["items"])
    return 0


def keys_revoke(args: argparse.Namespace) -> int:
    _print(_call(args, "DELETE", f"/api/keys/{args.key_id}", {"reason": args.reason}))
    return 0


def budgets_set(args: argparse.Namespace) -> int:
    body = _drop_none(
        {
            "project": args.project,
            "scope": args.scope,
            "scope_id": args.scope_id,
            "period": args.period,
            "limit_tokens": args.tokens,
            "limit_usd": args.usd,
            "action": args.action,
            "downgrade_at": args.downgrade_at,
            "thresholds": [float(t) for t in args.thresholds.split(",")] if args.thresholds else None,
        }
    )
    _print(_call(args, "PUT", "/api/budgets", body))
    return 0


def budgets_show(args: argparse.Namespace) -> int:
    if args.budget_id:
        _print(_call(args, "GET", f"/api/budgets/{args.budget_id}/status"))
        return 0
    suffix = f"?project={args.project}" if args.project else ""
    items = _call(args, "GET", "/api/budgets" + suffix)["items"]
    _print([_call(args, "GET", f"/api/budgets/{b['id']}/status") for b in items])
    return 0


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="server URL (default AITP_URL or http://127.0.0.1:8000)")
    parser.add_argument("--key", help="API key (default AITP_API_KEY, AITP_ADMIN_KEY, ./data/dev-admin-key)")


def add_admin_commands(sub: Any) -> None:
    keys = sub.add_parser("keys", help="virtual keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create a key (shown once)")
    _common(create)
    create.add_argument("--project", help="project (default: the caller's)")
    create.add_argument("--name", required=True)
    create.add_argument("--role", choices=["admin", "member", "viewer"], default="member")
    create.add_argument("--models", help="comma-separated allowed models")
    create.add_argument("--expires-days", type=float)
    create.add_argument("--rpm", type=int)
    create.add_argument("--tpm", type=int)
    create.set_defaults(func=keys_create)
    listing = keys_sub.add_parser("list", help="list keys (never their secrets)")
    _common(listing)
    listing.add_argument("--project")
    listing.set_defaults(func=keys_list)
    revoke = keys_sub.add_parser("revoke", help="revoke a key at once")
    _common(revoke)
    revoke.add_argument("key_id")
    revoke.add_argument("--reason", default="revoked from the CLI")
    revoke.set_defaults(func=keys_revoke)

    budgets = sub.add_parser("budgets", help="token and cost budgets")
    budgets_sub = budgets.add_subparsers(dest="budgets_command", required=True)
    setter = budgets_sub.add_parser("set", help="create or change a budget")
    _common(setter)
    setter.add_argument("--project", required=True)
    setter.add_argument("--scope", choices=["project", "key", "user"], default="project")
    setter.add_argument("--scope-id", help="key id or user name (key/user budgets)")
    setter.add_argument("--period", choices=["day", "month", "total"], default="month")
    setter.add_argument("--tokens", type=int, help="token limit")
    setter.add_argument("--usd", type=float, help="USD limit")
    setter.add_argument("--action", choices=["alert", "downgrade", "block"], default="alert")
    setter.add_argument("--downgrade-at", type=float)
    setter.add_argument("--thresholds", help="comma-separated fractions, e.g. 0.5,0.8,1")
    setter.set_defaults(func=budgets_set)
    show = budgets_sub.add_parser("show", help="budgets with used, remaining and reset time")
    _common(show)
    show.add_argument("budget_id", nargs="?")
    show.add_argument("--project")
    show.set_defaults(func=budgets_show)
