"""Starts ``aitp serve`` and ``aitp worker`` processes by forking one that has already imported them.

A fresh interpreter spends four to six CPU seconds importing litellm, Chroma,
OpenTelemetry and the app before it serves anything; the suite starts over a
hundred servers and workers on a two-core machine, so imports were most of its
time. The zygote (``python -m tests.zygote``) imports the same modules once and
forks a child per start. The child then runs exactly what ``python -m <module>
<args>`` runs (``runpy``, ``__main__``), with its own environment, working
directory, log file and, if asked, its own session, so everything after the
imports (settings, the app, uvicorn, the lifespan) is the real start.

The zygote is single-threaded when it forks (the imports start no thread), and
it reaps its children, writing each exit status to a file the test process
reads: :class:`Forked` offers the part of ``subprocess.Popen`` the tests use.
``AITP_TEST_NO_FORK=1`` starts plain subprocesses instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Protocol

# What `aitp serve` and `aitp worker` import before they do anything of their own.
PRELOAD = (
    "litellm",
    "uvicorn",
    "uvloop",
    "httptools",
    "aitp.cli",
    "aitp.app",
    "agents.tasks.worker",
    "core.logging",
    "core.settings",
)


class Process(Protocol):
    """What the tests need of a started process (``subprocess.Popen`` has all of it)."""

    pid: int

    @property
    def returncode(self) -> int | None: ...

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...

    def send_signal(self, sig: int) -> None: ...

    def kill(self) -> None: ...


class Forked:
    """A child of the zygote: alive until the zygote has reaped it and written its status."""

    def __init__(self, pid: int, status_path: Path, argv: list[str], zygote: subprocess.Popen[bytes]) -> None:
        self.pid = pid
        self._zygote = zygote
        self._status_path = status_path
        self._argv = argv
        self._returncode: int | None = None

    @property
    def returncode(self) -> int | None:
        return self.poll()

    def poll(self) -> int | None:
        if self._returncode is None and self._status_path.exists():
            self._returncode = int(self._status_path.read_text())
        if self._returncode is None and self._zygote.poll() is not None and not _alive(self.pid):
            # Gone without a status: the zygote died first and cannot report it. Not a hang.
            self._returncode = -signal.SIGKILL
        return self._returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(self._argv, timeout or 0)
            time.sleep(0.02)
        return code

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def _alive(pid: int) -> bool:
    """Running or stopped, not exited: a zombie (state Z) has exited and only waits for its reaper."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class Launcher:
    """Starts ``python -m <module> <args>``: forked from the zygote, or as a plain subprocess."""

    def __init__(self, status_dir: Path, fork: bool = True) -> None:
        self._status_dir = status_dir
        self._fork = fork and os.environ.get("AITP_TEST_NO_FORK") != "1"
        self._zygote: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._count = 0

    def start(
        self, module: str, args: list[str], *, env: dict[str, str], cwd: Path, log: IO[bytes], new_session: bool = False
    ) -> Process:
        argv = [sys.executable, "-m", module, *args]
        if not self._fork:
            return subprocess.Popen(
                argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=new_session
            )
        with self._lock:
            zygote = self._ensure()
            self._count += 1
            status = self._status_dir / f"exit-{self._count}"
            request = {
                "module": module,
                "args": args,
                "env": env,
                "cwd": str(cwd),
                "log": log.name,
                "status": str(status),
                "new_session": new_session,
            }
            assert zygote.stdin is not None and zygote.stdout is not None
            zygote.stdin.write(json.dumps(request).encode() + b"\n")
            zygote.stdin.flush()
            line = zygote.stdout.readline()
        if not line:
            raise RuntimeError(f"the zygote died (exit {zygote.poll()}); see {self._status_dir / 'zygote.log'}")
        return Forked(int(json.loads(line)["pid"]), status, argv, zygote)

    def _ensure(self) -> subprocess.Popen[bytes]:
        if self._zygote is not None and self._zygote.poll() is not None:
            log = (self._status_dir / "zygote.log").read_text(errors="replace")[-4000:]
            raise RuntimeError(f"the zygote exited with {self._zygote.returncode}; its servers are orphans:\n{log}")
        if self._zygote is None:
            self._status_dir.mkdir(parents=True, exist_ok=True)
            with (self._status_dir / "zygote.log").open("ab") as errors:
                self._zygote = subprocess.Popen(
                    [sys.executable, "-m", "tests.zygote"],
                    # litellm reads this at import, and the zygote imports it once for every child.
                    env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=errors,
                    cwd=Path(__file__).resolve().parent.parent,
                )
        return self._zygote

    def close(self) -> None:
        if self._zygote is not None and self._zygote.poll() is None:
            assert self._zygote.stdin is not None
            self._zygote.stdin.close()  # end of requests: the zygote exits; its children are not touched
            try:
                self._zygote.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._zygote.kill()
                self._zygote.wait()


def _reap(statuses: dict[int, str]) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        path = statuses.pop(pid, None)
        if path is not None:
            code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
            Path(path + ".tmp").write_text(str(code))
            os.replace(path + ".tmp", path)


def _child(request: dict[str, object]) -> None:
    """Become ``python -m <module> <args>``; never returns."""
    code = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        if request["new_session"]:
            os.setsid()
        log = os.open(str(request["log"]), os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.close(null)
        sys.stdin = open(0, closefd=False)  # noqa: SIM115
        sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
        os.chdir(str(request["cwd"]))
        env = request["env"]
        assert isinstance(env, dict)
        os.environ.clear()
        os.environ.update(env)
        import random

        random.seed()  # forks would otherwise share the zygote's sequence
        import runpy

        module = str(request["module"])
        args = request["args"]
        assert isinstance(args, list)
        sys.argv = [module, *map(str, args)]
        sys.modules.pop(module, None)  # as under ``python -m``, the module runs only as ``__main__``
        try:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def main() -> None:
    import importlib

    for name in PRELOAD:
        importlib.import_module(name)
    if threading.active_count() != 1:
        raise SystemExit(f"the zygote cannot fork safely: imports started threads {threading.enumerate()}")
    statuses: dict[int, str] = {}

    def on_child(signum: int, frame: object) -> None:
        try:
            _reap(statuses)
        except Exception:  # the zygote must outlive every child, or their statuses are lost
            import traceback

            traceback.print_exc()

    signal.signal(signal.SIGCHLD, on_child)
    requests = sys.stdin.buffer
    while line := requests.readline():
        request = json.loads(line)
        # Block SIGCHLD between fork and recording the pid, so a child that dies at once is not reaped unnamed.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
        pid = os.fork()
        if pid == 0:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
            _child(request)
        statuses[pid] = str(request["status"])
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
        sys.stdout.write(json.dumps({"pid": pid}) + "\n")
        sys.stdout.flush()
    # Requests are over: the tests have stopped their processes; give the last ones a moment to be
    # reaped so that every status is written, but never outlive a child that was leaked.
    deadline = time.monotonic() + 10
    while statuses and time.monotonic() < deadline:
        time.sleep(0.05)


if __name__ == "__main__":
    main()
