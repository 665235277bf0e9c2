"""``aitp worker`` refuses to start without Redis or with a queue no kind uses, and says why."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import REPO


def _worker(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AITP_")}
    return subprocess.run(
        [sys.executable, "-m", "aitp.cli", "worker", *args],
        cwd=REPO,
        env={**clean, "AITP_DEV": "true", "AITP_LOG_JSON": "false", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_worker_needs_redis() -> None:
    result = _worker()
    assert result.returncode == 2
    assert "AITP_REDIS_URL" in result.stderr


def test_worker_rejects_unknown_queues(tmp_path: object) -> None:
    result = _worker("--queues", "tasks,nope", AITP_REDIS_URL="redis://127.0.0.1:6379/15", AITP_DATA_DIR=str(tmp_path))
    assert result.returncode == 2
    assert "unknown queues ['nope']" in result.stderr
