"""The QA journey from the command line: ``aitp projects``, ``aitp kb`` and ``aitp testcases``.

Like ``aitp keys``, each command is a client of a running server (``--url``,
``--key``; see :mod:`aitp.admin_cli`), so it passes the same checks as the
REST API and MCP. Tables by default; ``--json`` prints the server's JSON.
An error prints the server's message and exits 1.
"""

from __future__ import annotations

import argparse
import mimetypes
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .admin_cli import _call, _drop_none, _print, _request
from .cli_table import out, say, table
from .tasks_cli import _query, answer, command, watch

CASE_COLUMNS = ("id", "type", "priority", "review_status", "source", "title")
DRAFT_NOTE = "source 'heuristic': rule-based drafts, review each before use"


def projects_create(args: argparse.Namespace) -> int:
    project = _call(args, "POST", "/api/projects", _drop_none({"name": args.name, "description": args.description}))
    if args.json:
        _print(project)
    else:
        out(f"created project {project.get('id', args.name)}")
        say(f"give it a key: aitp keys create --project {args.name} --name <who>")
    return 0


def projects_list(args: argparse.Namespace) -> int:
    found = _call(args, "GET", "/api/projects")
    answer(args, found, found["items"], ("id", "description", "created_at"))
    return 0


def kb_add(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_file():
        say(f"aitp: no such file: {path}")
        return 2
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    form = _drop_none({"title": args.title, "source": args.source})
    response = _request(
        args,
        "POST",
        "/api/kb/documents",
        files={"file": (path.name, path.read_bytes(), content_type)},
        data=form,
        timeout=300,
    )
    data = response.json()
    if response.status_code == 202:  # a large file is parsed by a task
        if args.json:
            _print(data)
        else:
            out(f"queued as task {data['id']}")
        return watch(args, data["id"]) if args.wait else 0
    if args.json:
        _print(data)
    else:
        verb = "added" if response.status_code == 201 else "already there:"
        out(f"{verb} document {data['id']} ({data['chunks']} chunks, {data['chars']} characters) {data['title'] or ''}")
    return 0


def kb_list(args: argparse.Namespace) -> int:
    found = _call(args, "GET", "/api/kb/documents" + _query(limit=args.limit, source=args.source))
    answer(args, found, found["items"], ("id", "title", "source", "chunks", "chars", "created_at"))
    return 0


def kb_search(args: argparse.Namespace) -> int:
    found = _call(args, "GET", "/api/kb/search" + _query(q=args.query, k=args.k))
    rows = [{**hit, "score": round(hit["score"], 3)} for hit in found["items"]]
    answer(args, found, rows, ("score", "doc_id", "section", "text"))
    return 0


def testcases_generate(args: argparse.Namespace) -> int:
    sources = [s for s in (args.document, args.file, args.text) if s]
    if len(sources) != 1:
        say("aitp: give exactly one of --document ID, --file PATH or --text TEXT")
        return 2
    task_input: dict[str, Any] = _drop_none(
        {
            "document_id": args.document,
            "requirement": Path(args.file).read_text(encoding="utf-8") if args.file else args.text,
            "max_cases": args.max_cases,
            "language": args.language,
            "module": args.module,
            "case_types": args.types.split(",") if args.types else None,
        }
    )
    if args.no_knowledge:
        task_input["use_knowledge"] = False
    task = _call(args, "POST", "/api/tasks", {"kind": "testcase.generate", "input": task_input})
    if args.json and not args.watch:
        _print(task)
        return 0
    out(task["id"])
    if not args.watch:
        say(f"follow it: aitp tasks watch {task['id']}")
        return 0
    return watch(args, task["id"])


def testcases_show(args: argparse.Namespace) -> int:
    found = _call(args, "GET", "/api/testcases" + _query(task_id=args.task_id, status=args.status, limit=500))
    if args.json:
        _print(found)
        return 0
    out(table(found["items"], CASE_COLUMNS))
    counts: dict[str, int] = {}
    for case in found["items"]:
        counts[case["review_status"]] = counts.get(case["review_status"], 0) + 1
    out(f"{found['total']} cases: " + ", ".join(f"{n} {status}" for status, n in sorted(counts.items())))
    if any(case["source"] == "heuristic" for case in found["items"]):
        say(DRAFT_NOTE)
    return 0


def testcases_review(args: argparse.Namespace) -> int:
    accepted = _ids(args.accept)
    rejected = _ids(args.reject)
    if args.accept_all or args.reject_rest:
        pending = _call(args, "GET", "/api/testcases" + _query(task_id=args.task_id, status="pending", limit=500))[
            "items"
        ]
        rest = [c["id"] for c in pending if c["id"] not in set(accepted) | set(rejected)]
        if args.accept_all:
            accepted += rest
        else:
            rejected += rest
    done = _call(
        args, "POST", f"/api/tasks/{args.task_id}/testcases/review", {"accepted": accepted, "rejected": rejected}
    )
    if args.json:
        _print(done)
    else:
        out(f"accepted {len(done['accepted'])}, rejected {len(done['rejected'])}, pending {done['pending']}")
    return 0


def _ids(raw: list[str] | None) -> list[str]:
    return [part.strip() for value in raw or [] for part in value.split(",") if part.strip()]


def testcases_export(args: argparse.Namespace) -> int:
    query = _query(format=args.format, status=args.status)
    response = _request(args, "GET", f"/api/tasks/{quote(args.task_id)}/testcases{query}", timeout=120)
    if args.output == "-":
        sys.stdout.buffer.write(response.content)
        return 0
    name = args.output or _file_name(response.headers.get("content-disposition", ""), args.task_id, args.format)
    Path(name).write_bytes(response.content)
    out(f"wrote {name} ({len(response.content)} bytes)")
    return 0


def _file_name(disposition: str, task_id: str, fmt: str) -> str:
    for part in disposition.split(";"):
        key, _, value = part.strip().partition("=")
        if key == "filename":
            return Path(value.strip('"')).name  # the server's name, never a path it might suggest
    return f"testcases-{task_id}.{fmt}"


def add_qa_commands(sub: Any) -> None:
    projects = sub.add_parser("projects", help="projects (the server admin key creates them)")
    projects_sub = projects.add_subparsers(dest="projects_command", required=True)
    create = command(projects_sub, "create", "create a project", projects_create)
    create.add_argument("name", help="lower-case letters, digits, '-' and '_'")
    create.add_argument("--description")
    command(projects_sub, "list", "the projects this key sees", projects_list)

    kb = sub.add_parser("kb", help="the project's knowledge base: requirements, specs, manuals")
    kb_sub = kb.add_subparsers(dest="kb_command", required=True)
    add = command(kb_sub, "add", "upload a document (txt, md, html, pdf, docx, xlsx …)", kb_add)
    add.add_argument("file")
    add.add_argument("--title")
    add.add_argument("--source", help="where it comes from (default: the file name)")
    add.add_argument("--wait", action="store_true", help="a large file is parsed by a task: wait for it")
    search = command(kb_sub, "search", "passages nearest in meaning to a query", kb_search)
    search.add_argument("query")
    search.add_argument("-k", type=int, default=5, help="how many passages (default 5)")
    docs = command(kb_sub, "list", "the project's documents", kb_list)
    docs.add_argument("--limit", type=int, default=50)
    docs.add_argument("--source")

    cases = sub.add_parser("testcases", help="generate, show, review and export test cases")
    cases_sub = cases.add_subparsers(dest="testcases_command", required=True)
    gen = command(cases_sub, "generate", "start a testcase.generate task; prints its id", testcases_generate)
    gen.add_argument("--document", help="a knowledge-base document id (aitp kb list)")
    gen.add_argument("--file", help="a requirement text file")
    gen.add_argument("--text", help="the requirement itself")
    gen.add_argument("--max-cases", type=int)
    gen.add_argument("--types", help="comma-separated: functional,boundary,negative,security")
    gen.add_argument("--language", choices=["zh", "en"])
    gen.add_argument("--module")
    gen.add_argument("--no-knowledge", action="store_true", help="do not retrieve from the knowledge base")
    gen.add_argument("--watch", action="store_true", help="follow its progress until it ends")
    show = command(cases_sub, "show", "a generation task's cases with their review status", testcases_show)
    show.add_argument("task_id")
    show.add_argument("--status", choices=["pending", "accepted", "rejected"])
    review = command(cases_sub, "review", "accept or reject many cases of a task in one atomic call", testcases_review)
    review.add_argument("task_id")
    review.add_argument("--accept", action="append", help="case ids (comma-separated, repeatable)")
    review.add_argument("--reject", action="append", help="case ids (comma-separated, repeatable)")
    rest = review.add_mutually_exclusive_group()
    rest.add_argument("--accept-all", action="store_true", help="accept every pending case not named")
    rest.add_argument("--reject-rest", action="store_true", help="reject every pending case not named")
    export = command(cases_sub, "export", "download a task's cases (xlsx, csv, md, json …)", testcases_export)
    export.add_argument("task_id")
    export.add_argument("--format", default="xlsx", help="xlsx (default), csv, md, json, or what the server lists")
    export.add_argument("--status", choices=["pending", "accepted", "rejected"], help="only these cases")
    export.add_argument("-o", "--output", help="file to write (default: the server's name; '-' for stdout)")
