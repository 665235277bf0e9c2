"""Gateway overhead bench: child processes, the fake upstream, the gateways and their venvs."""

from __future__ import annotations

import contextlib
import http.client
import os
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gw_config import (
    CHAT_PATH,
    LITELLM_VERSION,
    OFFLINE_ENV,
    PROXY_VENV,
    REPO,
    STARTUP_TIMEOUT_S,
    VENV_BIN,
    Launcher,
    Leg,
    Server,
)
from gw_loadgen import request_body
from harness import HOST, free_port, process_tree, stop_process

# -------------------------------------------------------------------- processes


class Children:
    """Every child process started by the bench; ``kill_all`` ends them and their groups."""

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen[bytes]] = []

    def spawn(
        self, cmd: list[str], env: dict[str, str], log: Path, stdout_pipe: bool = False
    ) -> subprocess.Popen[bytes]:
        with log.open("ab") as log_file:
            proc = subprocess.Popen(
                cmd,
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if stdout_pipe else log_file,
                stderr=log_file,
                start_new_session=True,  # own process group: killed with its children
            )
        self._procs.append(proc)
        return proc

    @staticmethod
    def stop(proc: subprocess.Popen[bytes]) -> None:
        stop_process(proc)

    def kill_all(self) -> None:
        for proc in reversed(self._procs):
            self.stop(proc)
            if proc.stdout is not None:
                proc.stdout.close()
        self._procs.clear()


def _base_env() -> dict[str, str]:
    dropped = ("AITP_", "LITELLM_", "DATABASE_URL", "PYTHONDONTWRITEBYTECODE")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    env.update(OFFLINE_ENV)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _read_port_line(proc: subprocess.Popen[bytes], timeout_s: float) -> int:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    buf = b""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not sel.select(timeout=0.2):
                if proc.poll() is not None:
                    break
                continue
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                break
            buf += chunk
            for line in buf.splitlines():
                if line.startswith(b"PORT "):
                    return int(line.split()[1])
    raise RuntimeError(f"fake upstream did not report its port (got {buf!r})")


def start_fake(children: Children, latency_ms: float, workdir: Path) -> Server:
    cmd = [
        str(VENV_BIN / "python"),
        "-m",
        "tests.fakes.llm_upstream",
        "--port",
        "0",
        "--latency-ms",
        str(latency_ms),
        "--no-record",
    ]
    log = workdir / f"fake-{latency_ms:g}ms.log"
    proc = children.spawn(cmd, _base_env(), log, stdout_pipe=True)
    port = _read_port_line(proc, 30.0)
    _wait_tcp(port, 30.0)
    return Server(proc, port, log)


def _wait_tcp(port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {HOST}:{port}")


def _try_chat(port: int, model: str, key: str) -> bool:
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        conn.request(
            "POST",
            CHAT_PATH,
            body=request_body(model, stream=False),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
        )
        resp = conn.getresponse()
        body = resp.read()
        return resp.status == 200 and b'"choices"' in body
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def wait_first_answer(proc: subprocess.Popen[bytes], port: int, leg: Leg, started: float) -> float:
    """Seconds from spawn to the first successful chat completion (polled every 50 ms)."""
    deadline = started + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{leg.name} exited with code {proc.returncode} before answering")
        if _try_chat(port, leg.model, leg.key):
            return time.monotonic() - started
        time.sleep(0.05)
    raise RuntimeError(f"{leg.name} answered no chat request within {STARTUP_TIMEOUT_S:.0f} s")


def rss_mb(root_pid: int) -> float:
    """VmRSS of a process plus all its descendants, in MB."""
    total_kb = 0
    for pid in process_tree(root_pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
    return round(total_kb / 1024, 1)


# ---------------------------------------------------------------------- targets


# Both gateways call the default tier's provider, DashScope (priced in litellm's map), at the fake.
def _aitp_yaml(fake_port: int) -> str:
    base = f"http://{HOST}:{fake_port}/v1"
    return (
        "models:\n"
        "  - name: bench-turbo\n"
        "    model: dashscope/qwen-turbo\n"
        "    tier: turbo\n"
        f"    api_base: {base}\n"
        "    api_key: fake\n"
        "  - name: bench-plus\n"
        "    model: dashscope/qwen-plus\n"
        "    tier: plus\n"
        f"    api_base: {base}\n"
        "    api_key: fake\n"
        "retries: {num_retries: 0}\n"
    )


def _proxy_yaml(fake_port: int) -> str:
    return (
        "model_list:\n"
        "  - model_name: turbo\n"
        "    litellm_params:\n"
        "      model: dashscope/qwen-turbo\n"
        f"      api_base: http://{HOST}:{fake_port}/v1\n"
        "      api_key: fake\n"
        "litellm_settings:\n"
        "  num_retries: 0\n"
    )


def make_aitp_launcher(children: Children, key: str) -> Launcher:
    def launch(fake_port: int, workdir: Path) -> Server:
        leg_dir = Path(tempfile.mkdtemp(prefix="aitp-", dir=workdir))
        config = leg_dir / "aitp.yaml"
        config.write_text(_aitp_yaml(fake_port))
        (leg_dir / "data").mkdir()
        env = _base_env()
        env.update(
            {
                "AITP_CONFIG": str(config),
                "AITP_DATA_DIR": str(leg_dir / "data"),
                "AITP_DEV": "true",
                "AITP_ADMIN_KEY": key,
            }
        )
        port = free_port()
        cmd = [str(VENV_BIN / "aitp"), "serve", "--host", HOST, "--port", str(port)]
        log = leg_dir / "server.log"
        return Server(children.spawn(cmd, env, log), port, log)

    return launch


def make_proxy_launcher(children: Children, key: str) -> Launcher:
    def launch(fake_port: int, workdir: Path) -> Server:
        leg_dir = Path(tempfile.mkdtemp(prefix="proxy-", dir=workdir))
        config = leg_dir / "proxy.yaml"
        config.write_text(_proxy_yaml(fake_port))
        env = _base_env()
        env["LITELLM_MASTER_KEY"] = key
        port = free_port()
        cmd = [
            str(PROXY_VENV / "bin" / "litellm"),
            "--config",
            str(config),
            "--host",
            HOST,
            "--port",
            str(port),
            "--num_workers",
            "1",
        ]
        log = leg_dir / "server.log"
        return Server(children.spawn(cmd, env, log), port, log)

    return launch


def ensure_proxy_venv() -> None:
    """Creates bench/.venv-litellm-proxy with litellm[proxy] pinned, unless it is already there."""
    python = PROXY_VENV / "bin" / "python"
    if (PROXY_VENV / "bin" / "litellm").exists():
        probe = subprocess.run(
            [str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.stdout.strip() == LITELLM_VERSION:
            return
    uv = shutil.which("uv")
    if uv is None:
        raise RuntimeError("uv is needed to create the LiteLLM proxy venv")
    print(f"creating {PROXY_VENV.relative_to(REPO)} with litellm[proxy]=={LITELLM_VERSION} ...", flush=True)
    py_version = f"{sys.version_info.major}.{sys.version_info.minor}"
    subprocess.run([uv, "venv", "--allow-existing", "--python", py_version, str(PROXY_VENV)], check=True)
    subprocess.run(
        [uv, "pip", "install", "--compile-bytecode", "--python", str(python), f"litellm[proxy]=={LITELLM_VERSION}"],
        check=True,
    )


def precompile(python: Path) -> None:
    """Writes the bytecode of an interpreter's site-packages, as pip or a container build would.

    This machine sets PYTHONDONTWRITEBYTECODE, so without this every start would compile
    litellm from source (seconds) and failed imports retried per request would recompile too.
    """
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    subprocess.run(
        [str(python), "-m", "compileall", "-q", "-j", "0", purelib],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,  # a few vendored files do not compile on purpose; that is fine
        timeout=900,
    )


def proxy_version() -> str | None:
    python = PROXY_VENV / "bin" / "python"
    if not python.exists():
        return None
    probe = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        capture_output=True,
        text=True,
        check=False,
    )
    return probe.stdout.strip() or None
