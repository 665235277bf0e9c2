"""The QA journey with the real ``aitp`` console script against a live server with no model configured.

project and key -> knowledge base -> generate (rule-based drafts) -> watch -> show -> bulk review -> Excel,
each step a subprocess, as a QA lead would type it.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from tests.agents.conftest import task_config
from tests.conftest import Server, ServerFactory

AITP = Path(sys.executable).parent / "aitp"  # the console script installed with the package
REQUIREMENT = """# 登录

## 用户名
用户名长度为 3 到 20 位，只能包含字母和数字。用户名为空时提示“请输入用户名”。

## 密码
密码长度为 8 到 20 位。连续输错 5 次密码后锁定账号 30 分钟，提示“账号已锁定”。
"""


@pytest.fixture(scope="module")
async def server(server_factory: ServerFactory) -> Server:
    return await asyncio.to_thread(server_factory, task_config())


def aitp(
    server: Server, *args: str, key: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AITP_")}
    env.update({"AITP_URL": server.base_url, "AITP_API_KEY": key or server.admin_key, "NO_PROXY": "127.0.0.1"})
    return subprocess.run([str(AITP), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120)


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, (result.args, result.stdout, result.stderr)
    return result


def as_json(result: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(ok(result).stdout)


@pytest.mark.timeout(300)  # about twenty processes: each CLI start imports httpx, slow on a busy machine
def test_the_qa_journey(server: Server, tmp_path: Path) -> None:
    project = f"qa-{secrets.token_hex(4)}"
    assert as_json(aitp(server, "projects", "create", project, "--json"))["id"] == project
    assert project in ok(aitp(server, "projects", "list")).stdout
    key = as_json(aitp(server, "keys", "create", "--project", project, "--name", "qa-lead"))["key"]

    requirement = tmp_path / "login.md"
    requirement.write_text(REQUIREMENT, encoding="utf-8")
    document = as_json(aitp(server, "kb", "add", str(requirement), "--title", "登录需求", "--json", key=key))
    assert document["chunks"] >= 1
    listed = ok(aitp(server, "kb", "list", key=key)).stdout
    assert document["id"] in listed and "登录需求" in listed
    hits = as_json(aitp(server, "kb", "search", "账号锁定", "--json", key=key))["items"]
    assert hits and "锁定" in hits[0]["text"]

    task_id = ok(aitp(server, "testcases", "generate", "--document", document["id"], key=key)).stdout.strip()
    watched = ok(aitp(server, "tasks", "watch", task_id, key=key))
    assert "100%" in watched.stderr and "succeeded" in watched.stderr, watched.stderr
    assert "succeeded" in watched.stdout and "case_count" in watched.stdout

    shown = ok(aitp(server, "testcases", "show", task_id, key=key))
    assert "rule-based drafts" in shown.stderr and "pending" in shown.stdout
    cases = as_json(aitp(server, "testcases", "show", task_id, "--json", key=key))["items"]
    assert len(cases) >= 3 and all(c["source"] == "heuristic" and c["review_status"] == "pending" for c in cases)
    first, second, *rest = [c["id"] for c in cases]
    done = as_json(aitp(server, "testcases", "review", task_id, "--reject", first, "--accept-all", "--json", key=key))
    assert done["rejected"] == [first] and set(done["accepted"]) == {second, *rest} and done["pending"] == 0
    statuses = {
        c["id"]: c["review_status"]
        for c in as_json(aitp(server, "testcases", "show", task_id, "--json", key=key))["items"]
    }
    assert statuses[first] == "rejected" and statuses[second] == "accepted"

    exported = ok(
        aitp(server, "testcases", "export", task_id, "--status", "accepted", "-o", "cases.xlsx", key=key, cwd=tmp_path)
    )
    assert "cases.xlsx" in exported.stdout
    sheet = openpyxl.load_workbook(tmp_path / "cases.xlsx").worksheets[0]
    titles = {c["title"] for c in cases[1:]}
    found = {cell for row in sheet.iter_rows(values_only=True) for cell in row if cell in titles}
    assert found == titles  # every accepted case, and not the rejected one unless it shares a title
    assert ok(aitp(server, "testcases", "export", task_id, "--format", "csv", key=key, cwd=tmp_path))
    assert (tmp_path / f"testcases-{task_id}.csv").stat().st_size > 0

    tasks = ok(aitp(server, "tasks", "list", "--kind", "testcase.generate", key=key)).stdout
    assert task_id in tasks and "succeeded" in tasks
    assert as_json(aitp(server, "tasks", "show", task_id, "--json", key=key))["status"] == "succeeded"
    assert "total_tokens" in json.dumps(as_json(aitp(server, "usage", "--json", key=key))["totals"])


def test_errors_print_the_servers_message_and_exit_non_zero(server: Server) -> None:
    key = server.new_key(f"qa-{secrets.token_hex(4)}")
    missing = aitp(server, "testcases", "generate", "--document", "doc_nope", key=key)
    assert missing.returncode == 1 and "400" in missing.stderr and "'doc_nope' not found" in missing.stderr
    unknown = aitp(server, "tasks", "show", "task_nope", key=key)
    assert unknown.returncode == 1 and "404" in unknown.stderr and "Traceback" not in unknown.stderr
    bad_key = aitp(server, "tasks", "list", key="sk-aitp-wrong")
    assert bad_key.returncode == 1 and "401" in bad_key.stderr
    unreachable = subprocess.run(
        [str(AITP), "tasks", "list", "--url", "http://127.0.0.1:9", "--key", "sk-aitp-x"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert unreachable.returncode == 1 and "cannot reach" in unreachable.stderr


def test_config_check_dev_needs_no_admin_key(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AITP_") and k != "DASHSCOPE_API_KEY"}
    refused = subprocess.run([str(AITP), "config", "check"], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert refused.returncode == 2 and "AITP_ADMIN_KEY" in refused.stderr
    dev = subprocess.run(
        [str(AITP), "config", "check", "--dev"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert dev.returncode == 0, dev.stderr
    assert "settings OK" in dev.stdout and "local/echo" in dev.stdout
