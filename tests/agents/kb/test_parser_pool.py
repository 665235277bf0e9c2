"""The parser processes: a document past the memory or time limit is a 400 naming it, and a cancelled parse is killed.

These run real child processes (a forkserver and pebble workers), as the
server does.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from agents.kb.parser_pool import ParserPool
from core.errors import InvalidRequest
from core.settings import KnowledgeSettings
from tests.agents.kb.bombs import MiB, docx_with, paragraphs_xml
from tests.agents.kb.documents import make_docx


def slow_markdown(rules: int) -> bytes:
    """Markdown that takes markdown-it about 4 s per 100,000 bytes on this machine."""
    return "".join(
        f"## Rule {i}\n\n- item *{i}* with `code` and [link](http://x/{i})\n- another item\n\n" for i in range(rules)
    ).encode()


@pytest.fixture
async def pools() -> AsyncIterator[list[ParserPool]]:
    made: list[ParserPool] = []
    yield made
    for pool in made:
        await asyncio.to_thread(pool.close)


def pool_of(made: list[ParserPool], **kb: Any) -> ParserPool:
    pool = ParserPool(KnowledgeSettings.model_validate(kb))
    made.append(pool)
    return pool


async def test_parses_in_a_child_process(pools: list[ParserPool]) -> None:
    pool = pool_of(pools)
    prepared = await pool.prepare(make_docx([("h1", "登录"), ("p", "密码8到20位。")]), None, "a.docx")
    assert prepared.title == "登录" and [c.text for c in prepared.chunks] == ["密码8到20位。"]
    with pytest.raises(InvalidRequest, match="supported"):
        await pool.prepare(b"PK\x03\x04", "application/zip", "a.zip")


async def test_a_document_needing_more_memory_than_the_limit_is_refused(pools: list[ParserPool]) -> None:
    # Every size limit opened wide: only the process's address-space cap stands in the way.
    pool = pool_of(
        pools,
        parser_memory_bytes=512 * MiB,
        max_compression_ratio=10_000,
        max_unpacked_member_bytes=1024 * MiB,
        max_unpacked_bytes=1024 * MiB,
        max_text_chars=10**9,
        max_chunks_per_document=10**7,
    )
    data = docx_with({"word/document.xml": paragraphs_xml(400 * MiB)})
    started = time.perf_counter()
    with pytest.raises(InvalidRequest) as info:
        await pool.prepare(data, None, "a.docx")
    assert "kb.parser_memory_bytes" in info.value.message and "512.0 MiB" in info.value.message
    assert time.perf_counter() - started < 20
    # The next document gets a fresh worker.
    assert (await pool.prepare(b"still works", None, "a.txt")).text == "still works"


async def test_a_parse_past_the_time_limit_is_killed_and_refused(pools: list[ParserPool]) -> None:
    pool = pool_of(pools, parser_timeout_s=0.5, parser_processes=1)
    started = time.perf_counter()
    with pytest.raises(InvalidRequest, match=r"longer than 0\.5 s.*kb\.parser_timeout_s"):
        await pool.prepare(slow_markdown(50_000), "text/markdown", None)
    assert time.perf_counter() - started < 5
    assert (await pool.prepare(b"next", None, "a.txt")).text == "next"


@pytest.mark.serial  # measures which process burns CPU over 0.3 s: run alone
async def test_a_cancelled_parse_stops_its_process(pools: list[ParserPool]) -> None:
    pool = pool_of(pools, parser_processes=1)
    await pool.prepare(b"warm", None, "a.txt")
    job = asyncio.ensure_future(pool.prepare(slow_markdown(50_000), "text/markdown", None))  # about 20 s of work
    await asyncio.sleep(0.5)
    busy = _busy_descendants()
    assert len(busy) == 1, busy  # the worker parsing it
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job
    # One worker: had the cancelled parse gone on, this would wait for it.
    started = time.perf_counter()
    assert (await pool.prepare(b"after", None, "a.txt")).text == "after"
    assert time.perf_counter() - started < 5
    assert not busy & set(_cpu_ticks())


def _busy_descendants() -> set[int]:
    """The processes below this one that burn CPU (over 0.05 s in 0.3 s)."""
    first = _cpu_ticks()
    time.sleep(0.3)
    second = _cpu_ticks()
    return {pid for pid, ticks in second.items() if ticks - first.get(pid, ticks) >= 5}


def _cpu_ticks() -> dict[int, int]:
    """pid -> user + system clock ticks of every live process below this one."""
    ticks: dict[int, int] = {}
    for pid, fields in _descendants().items():
        ticks[pid] = int(fields[11]) + int(fields[12])
    return ticks


def _descendants() -> dict[int, list[str]]:
    """pid -> /proc/<pid>/stat fields (after the name: state, ppid, ...) of every live process below this one."""
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(") ", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if fields[0] not in "ZX":
                stats[int(entry)] = fields
    found: dict[int, list[str]] = {}
    frontier = {os.getpid()}
    while frontier:
        below = {pid: fields for pid, fields in stats.items() if int(fields[1]) in frontier}
        found.update(below)
        frontier = set(below)
    return found
